import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { getMethod } from "../../src/merge/registry.js";
import type { ParamValues, StreamingMerge } from "../../src/merge/types.js";

// A streaming merge must reproduce merge() bit for bit, whatever the chunk size.

function inputs(n: number, k: number, seed: number) {
  let s = seed;
  const rnd = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
  const base = new Float32Array(n).map(() => rnd());
  const models = Array.from({ length: k }, () => {
    const x = new Float32Array(n);
    // Quantised deltas make many exact ties in |delta| at the top-k threshold.
    for (let i = 0; i < n; i++) x[i] = base[i]! + Math.round(rnd() * 64) / 1024;
    return x;
  });
  return { base, models };
}

function runStream(stream: StreamingMerge, base: Float32Array, models: Float32Array[], chunk: number): Float32Array {
  const n = base.length;
  const at = (start: number) => {
    const end = Math.min(n, start + chunk);
    return { start, base: base.subarray(start, end), models: models.map((m) => m.subarray(start, end)) };
  };
  for (let p = 0; p < stream.passes; p++) {
    for (let start = 0; start < n; start += chunk) stream.observe(p, at(start));
    stream.endPass(p);
  }
  const out = new Float32Array(n);
  for (let start = 0; start < n; start += chunk) {
    const c = at(start);
    stream.emit(c, out.subarray(start, start + c.base.length));
  }
  return out;
}

/** Stream `method` over the inputs in chunks and check it against the whole-tensor merge, bit for bit. */
function assertStreamsExactly(
  method: string,
  params: ParamValues,
  modelParams: ParamValues[],
  base: Float32Array,
  models: Float32Array[],
  chunk: number,
  what: string,
): void {
  const n = base.length;
  const tensorName = "model.layers.0.mlp.down_proj.weight";
  const spec = getMethod(method);
  const whole = spec.merge({
    tensorName,
    models: models.map((data) => ({ data, shape: [n] })),
    base: { data: base, shape: [n] },
    params,
    modelParams,
    seed: 5,
  });
  const stream = spec.streaming?.({
    tensorName,
    numel: n,
    shape: [n],
    models: models.length,
    hasBase: true,
    params,
    modelParams,
    seed: 5,
  });
  assert.ok(stream !== undefined, `${what}: streaming supported`);
  const out = runStream(stream, base, models, chunk);
  assert.ok(Buffer.from(out.buffer).equals(Buffer.from(whole.data.buffer)), `${what}: bit-identical`);
}

const CASES: Array<[string, ParamValues, ParamValues[]]> = [
  [
    "ties",
    {},
    [
      { weight: 0.5, density: 0.3 },
      { weight: 0.7, density: 0.5 },
      { weight: -0.2, density: 0.9 },
    ],
  ],
  [
    "ties",
    { rescale: true, normalize: false, lambda: 0.8 },
    [
      { weight: 1, density: 0.25 },
      { weight: 1, density: 1 },
    ],
  ],
  [
    "dare_ties",
    {},
    [
      { weight: 0.5, density: 0.3 },
      { weight: 0.5, density: 0.6 },
      { weight: 0.5, density: 0.9 },
    ],
  ],
  [
    "dare_ties",
    { rescale: false },
    [
      { weight: 0.5, density: 0.4 },
      { weight: 0.5, density: 0.4 },
    ],
  ],
  [
    "dare_linear",
    {},
    [
      { weight: 0.6, density: 0.5 },
      { weight: 0.4, density: 0.7 },
    ],
  ],
  ["task_arithmetic", {}, [{ weight: 0.6 }, { weight: 0.4 }]],
  ["slerp", { t: 0.3 }, [{}]],
  ["slerp", { t: 1.2 }, [{}]],
  ["model_stock", {}, [{}, {}, {}]],
  ["model_stock", {}, [{}, {}]],
  ["nuslerp", {}, [{ weight: 0.3 }, { weight: 0.5 }]],
  ["nuslerp", {}, [{ weight: 1 }, { weight: -1 }]],
  ["multislerp", {}, [{ weight: 0.3 }, { weight: 0.5 }, { weight: 0.2 }]],
  ["multislerp", { normalize_weights: false, eps: 1e-6 }, [{ weight: 1 }, { weight: 2 }]],
];

describe("streaming merges (task arithmetic, the SLERPs, Model Stock) equal whole-tensor merges", () => {
  for (const [method, params, modelParams] of CASES) {
    for (const chunk of [1000, 333]) {
      it(`${method} ${JSON.stringify(params)} ${modelParams.map((p) => p.density ?? 1).join("/")}, chunks of ${chunk}`, () => {
        const n = 10_007;
        const { base, models } = inputs(n, modelParams.length, 17);
        assertStreamsExactly(method, params, modelParams, base, models, chunk, method);
      });
    }
  }

  it("SLERP streams its lerp fallback (nearly parallel) and a zero tensor exactly as well", () => {
    const n = 5000;
    const { base } = inputs(n, 0, 9);
    const near = base.map((x, i) => x * 1.0001 + (i % 7 === 0 ? 1e-6 : 0));
    const zero = new Float32Array(n);
    for (const [what, model] of [
      ["nearly parallel", near],
      ["zero", zero],
    ] as const) {
      assertStreamsExactly("slerp", { t: 0.4 }, [{}], base, [model], 700, what);
    }
  });

  it("multislerp streams its two-model fallback (a weighted mean shorter than eps) exactly as well", () => {
    const n = 5000;
    const { base, models } = inputs(n, 2, 21);
    // eps 2 exceeds any mean of unit vectors: the two-model lerp of the task vectors, plus the base
    assertStreamsExactly("multislerp", { eps: 2 }, [{ weight: 0.3 }, { weight: 0.7 }], base, models, 700, "fallback");
  });

  it("task vectors that float32 rounds (model and base far apart in magnitude) stream exactly as well", () => {
    const n = 5000;
    let s = 7;
    const rnd = () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return s / 2 ** 32 - 0.5;
    };
    // x - base needs more than 24 bits where |base| << |x|: every method must round it as the whole merge does
    const base = new Float32Array(n).map(() => rnd() * 1e-5);
    const models = [0, 1, 2].map(() => new Float32Array(n).map(() => rnd()));
    assertStreamsExactly("nuslerp", {}, [{ weight: 0.4 }, { weight: 0.6 }], base, models.slice(0, 2), 700, "nuslerp");
    assertStreamsExactly(
      "multislerp",
      {},
      [{ weight: 0.2 }, { weight: 0.3 }, { weight: 0.5 }],
      base,
      models,
      700,
      "multislerp",
    );
    assertStreamsExactly("model_stock", {}, [{}, {}, {}], base, models, 700, "model_stock");
  });

  it("infinite and NaN deltas stream exactly as well", () => {
    const n = 5000;
    const { base, models } = inputs(n, 2, 3);
    models[0]![10] = Number.POSITIVE_INFINITY;
    models[1]![4000] = Number.NaN;
    const modelParams = [
      { weight: 1, density: 0.5 },
      { weight: 1, density: 0.5 },
    ];
    for (const method of ["ties", "dare_ties"]) {
      assertStreamsExactly(method, {}, modelParams, base, models, 700, method);
    }
  });

  it("methods whose statistics are row-wise or windowed fall back to whole tensors", () => {
    for (const method of ["della", "breadcrumbs", "breadcrumbs_ties"]) {
      const s = getMethod(method).streaming?.({
        tensorName: "t",
        numel: 10,
        shape: [10],
        models: 1,
        hasBase: true,
        modelParams: [{ weight: 1, density: 0.5 }],
      });
      assert.equal(s, undefined, method);
    }
  });

  it("k = int(density * n) = 0 is refused as in the whole-tensor merge", () => {
    assert.throws(
      () =>
        getMethod("ties").streaming!({
          tensorName: "t",
          numel: 7,
          shape: [7],
          models: 1,
          hasBase: true,
          modelParams: [{ weight: 1, density: 0.1 }],
        }),
      /0 entries/,
    );
  });
});
