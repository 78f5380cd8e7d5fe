// The declarative side of merge methods: registry, parameter declarations, validation of inputs.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { FusionError } from "../../src/errors.js";
import {
  checkParam,
  getMethod,
  listMethods,
  type MergeInput,
  methodNames,
  resolveParams,
  suggestMethod,
  type TensorData,
  unknownParams,
} from "../../src/merge/index.js";

const ALL = [
  "linear",
  "slerp",
  "nuslerp",
  "multislerp",
  "karcher",
  "task_arithmetic",
  "ties",
  "dare_ties",
  "dare_linear",
  "breadcrumbs",
  "breadcrumbs_ties",
  "della",
  "della_linear",
  "model_stock",
  "sce",
  "nearswap",
  "passthrough",
];

function tensor(values: number[], shape = [values.length]): TensorData {
  return { data: Float32Array.from(values), shape };
}

function rand(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 4294967296 - 0.5) * scale;
  });
}

function expectMergeError(fn: () => unknown, code: string, key?: string, tensorName = "t.weight"): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FusionError, `not a FusionError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.tensor, tensorName, "the error names the tensor");
    if (key !== undefined) assert.equal(e.key, key, e.message);
    return true;
  });
}

describe("registry", () => {
  test("holds every mergekit method once", () => {
    assert.deepEqual([...methodNames()].sort(), [...ALL].sort());
    for (const name of ALL) assert.equal(getMethod(name).name, name);
  });

  test("unknown names are rejected with a suggestion", () => {
    assert.equal(suggestMethod("tie"), "ties");
    assert.equal(suggestMethod("dare-ties"), "dare_ties");
    assert.equal(suggestMethod("Linear"), "linear");
    assert.equal(suggestMethod("breadcrumb_ties"), "breadcrumbs_ties");
    assert.equal(suggestMethod("completely-unrelated"), undefined);
    assert.throws(
      () => getMethod("slurp", "merge.yml"),
      (e: unknown) =>
        e instanceof FusionError &&
        e.code === "MERGE_INVALID" &&
        /did you mean 'slerp'/.test(e.message) &&
        e.file === "merge.yml",
    );
  });

  test("every method file starts with a citation line naming its mergekit reference", () => {
    const files: Record<string, string> = { model_stock: "model_stock" };
    for (const name of ALL) {
      const src = readFileSync(new URL(`../../src/merge/methods/${files[name] ?? name}.ts`, import.meta.url), "utf8");
      const first = src.split("\n")[0]!;
      assert.match(first, /^\/\/ .+; ref: mergekit\/merge_methods\/\w+\.py$/, `${name}: ${first}`);
    }
  });
});

describe("parameter declarations", () => {
  test("every spec is well formed and its defaults satisfy its own ranges", () => {
    for (const spec of listMethods()) {
      assert.ok(spec.title && spec.reference && spec.mergekitRef, spec.name);
      const names = [...spec.parameters, ...spec.modelParameters].map((p) => p.name);
      assert.equal(new Set(names).size, names.length, `${spec.name}: duplicate parameter names`);
      for (const p of [...spec.parameters, ...spec.modelParameters]) {
        assert.ok(p.description.length > 0, `${spec.name}.${p.name} has a description`);
        if (p.default !== undefined && p.default !== null) {
          checkParam(p, p.default, { method: spec.name, tensor: "-" });
        }
      }
    }
  });

  // mergekit's declared defaults (registry.py, generalized_task_arithmetic.py, each method's parameters()).
  const DEFAULTS: Record<string, [Record<string, unknown>, Record<string, unknown>]> = {
    linear: [{ normalize: true }, { weight: "required" }],
    slerp: [{ t: "required" }, {}],
    nuslerp: [{ nuslerp_row_wise: false, nuslerp_flatten: true }, { weight: "required" }],
    multislerp: [{ normalize_weights: true, eps: 1e-8 }, { weight: "required" }],
    karcher: [{ max_iter: 10, tol: 1e-5 }, {}],
    task_arithmetic: [
      { int8_mask: false, normalize: false, rescale: false, lambda: 1 },
      { weight: "required", density: 1 },
    ],
    ties: [
      { int8_mask: false, normalize: true, rescale: false, lambda: 1 },
      { weight: "required", density: 1 },
    ],
    dare_ties: [
      { int8_mask: false, normalize: false, rescale: true, lambda: 1 },
      { weight: "required", density: 1 },
    ],
    dare_linear: [
      { int8_mask: false, normalize: false, rescale: true, lambda: 1 },
      { weight: "required", density: 1 },
    ],
    breadcrumbs: [
      { int8_mask: false, normalize: false, rescale: false, lambda: 1 },
      { weight: "required", density: 1, gamma: 0.01 },
    ],
    breadcrumbs_ties: [
      { int8_mask: false, normalize: false, rescale: false, lambda: 1 },
      { weight: "required", density: 1, gamma: 0.01 },
    ],
    della: [
      { int8_mask: false, normalize: true, rescale: true, lambda: 1 },
      { weight: "required", density: 1, epsilon: 0.15 },
    ],
    della_linear: [
      { int8_mask: false, normalize: false, rescale: true, lambda: 1 },
      { weight: "required", density: 1, epsilon: 0.15 },
    ],
    model_stock: [{ filter_wise: false }, {}],
    sce: [{ int8_mask: false, select_topk: 1 }, {}],
    nearswap: [{ t: "required" }, {}],
    passthrough: [{}, { scale: null }],
  };
  for (const [name, [global, perModel]] of Object.entries(DEFAULTS)) {
    test(`${name} declares mergekit's parameters and defaults`, () => {
      const spec = getMethod(name);
      const decl = (ps: typeof spec.parameters) =>
        Object.fromEntries(ps.map((p) => [p.name, p.default === undefined ? "required" : p.default]));
      assert.deepEqual(decl(spec.parameters), global);
      assert.deepEqual(decl(spec.modelParameters), perModel);
    });
  }

  test("resolveParams fills defaults and ignores unknown names; unknownParams lists them", () => {
    const ties = getMethod("ties");
    const where = { method: "ties", tensor: "t" };
    assert.deepEqual(resolveParams(ties.parameters, { lambda: 0.5, bogus: 1 }, where), {
      int8_mask: false,
      normalize: true,
      rescale: false,
      lambda: 0.5,
    });
    assert.deepEqual(unknownParams(ties.modelParameters, { weight: 1, densty: 0.5 }), ["densty"]);
  });
});

describe("input validation", () => {
  const base = tensor([1, 2, 3, 4]);
  const m0 = tensor([1.5, 1, 3.5, 3]);
  const m1 = tensor([0.5, 2.5, 2, 5]);
  const run = (name: string, input: Partial<MergeInput>) =>
    getMethod(name).merge({ tensorName: "t.weight", models: [m0, m1], ...input });

  test("density outside (0, 1] is rejected, naming the parameter and model", () => {
    for (const density of [0, -0.1, 1.5, Number.NaN]) {
      expectMergeError(
        () => run("ties", { base, modelParams: [{ weight: 1, density }, { weight: 1 }] }),
        "MERGE_INVALID",
        "density",
      );
    }
    assert.throws(
      () => run("ties", { base, modelParams: [{ weight: 1 }, { weight: 1, density: 2 }] }),
      /parameter 'density' \(model 1\) must be in \(0, 1\], got 2/,
    );
  });

  test("wrong types, missing required parameters and bad ranges are rejected", () => {
    expectMergeError(() => run("linear", { modelParams: [{ weight: 1 }, {}] }), "MERGE_INVALID", "weight");
    expectMergeError(() => run("linear", { modelParams: [{ weight: "1" }, { weight: 1 }] }), "MERGE_INVALID", "weight");
    expectMergeError(
      () => run("linear", { params: { normalize: "yes" }, modelParams: [{ weight: 1 }, { weight: 1 }] }),
      "MERGE_INVALID",
      "normalize",
    );
    expectMergeError(() => run("slerp", { base, models: [m0] }), "MERGE_INVALID", "t");
    expectMergeError(() => run("karcher", { params: { max_iter: 2.5 } }), "MERGE_INVALID", "max_iter");
    expectMergeError(() => run("sce", { base, params: { select_topk: 1.2 } }), "MERGE_INVALID", "select_topk");
    expectMergeError(() => run("nearswap", { base, models: [m0], params: { t: -1 } }), "MERGE_INVALID", "t");
    expectMergeError(
      () => run("della", { base, modelParams: [{ weight: 1, epsilon: 1 }, { weight: 1 }] }),
      "MERGE_INVALID",
      "epsilon",
    );
    expectMergeError(
      () => run("breadcrumbs", { base, modelParams: [{ weight: 1, gamma: 2 }, { weight: 1 }] }),
      "MERGE_INVALID",
      "gamma",
    );
  });

  test("base model presence and model counts are checked", () => {
    expectMergeError(() => run("ties", { modelParams: [{ weight: 1 }, { weight: 1 }] }), "MERGE_INVALID");
    expectMergeError(() => run("linear", { base, modelParams: [{ weight: 1 }, { weight: 1 }] }), "MERGE_INVALID");
    expectMergeError(() => run("slerp", { base, params: { t: 0.5 } }), "MERGE_INVALID");
    expectMergeError(() => run("passthrough", {}), "MERGE_INVALID");
    expectMergeError(() => run("linear", { models: [], modelParams: [] }), "MERGE_INVALID");
    expectMergeError(() => run("linear", { modelParams: [{ weight: 1 }] }), "MERGE_INVALID");
  });

  test("malformed tensors and shape mismatches are rejected", () => {
    expectMergeError(
      () =>
        run("linear", {
          models: [m0, { data: new Float32Array(3), shape: [4] }],
          modelParams: [{ weight: 1 }, { weight: 1 }],
        }),
      "SHAPE_MISMATCH",
    );
    const wide = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const tall = tensor([1, 2, 3, 4, 5, 6], [3, 2]);
    expectMergeError(
      () => run("linear", { models: [wide, tall], modelParams: [{ weight: 1 }, { weight: 1 }] }),
      "SHAPE_MISMATCH",
    );
    expectMergeError(
      () => run("task_arithmetic", { base: wide, models: [tall], modelParams: [{ weight: 1 }] }),
      "SHAPE_MISMATCH",
    );
    expectMergeError(() => run("sce", { base: wide, models: [tall] }), "SHAPE_MISMATCH");
    expectMergeError(() => run("nearswap", { base: wide, models: [tall], params: { t: 1 } }), "SHAPE_MISMATCH");
    expectMergeError(
      () => run("multislerp", { models: [wide, tall], modelParams: [{ weight: 1 }, { weight: 1 }] }),
      "SHAPE_MISMATCH",
    );
    // Only 2-D embeddings are cropped.
    expectMergeError(
      () =>
        run("ties", {
          isEmbed: true,
          base: tensor([1, 2, 3, 4, 5, 6], [6]),
          models: [tensor([1, 2, 3, 4], [4])],
          modelParams: [{ weight: 1 }],
        }),
      "SHAPE_MISMATCH",
    );
  });
});

test("empty tensors merge to an empty tensor with every method", () => {
  const e = { data: new Float32Array(0), shape: [0, 4] };
  for (const spec of listMethods()) {
    const k = spec.models.max === 1 ? 1 : 2;
    const out = spec.merge({
      tensorName: "t.weight",
      models: Array.from({ length: k }, () => e),
      base: spec.base === "unused" ? undefined : e,
      params: { t: 0.5 },
      modelParams: Array.from({ length: k }, () => ({ weight: 1, density: 0.5 })),
    });
    assert.deepEqual(out.shape, [0, 4], spec.name);
    assert.equal(out.data.length, 0);
  }
});

describe("purity", () => {
  const shape = [6, 5];
  const n = 30;
  const base = { data: rand(n, 1), shape };
  const models = [2, 3, 4].map((s) => ({
    data: Float32Array.from(rand(n, s, 0.2), (v, i) => v + base.data[i]!),
    shape,
  }));
  const inputs: Record<string, Partial<MergeInput>> = {
    linear: { modelParams: models.map(() => ({ weight: 0.3 })) },
    slerp: { base, models: [models[0]!], params: { t: 0.3 } },
    nuslerp: {
      models: models.slice(0, 2),
      modelParams: [{ weight: 1 }, { weight: 2 }],
      params: { nuslerp_flatten: false },
    },
    multislerp: { base, modelParams: models.map(() => ({ weight: 1 })) },
    karcher: {},
    model_stock: { base, params: { filter_wise: true } },
    sce: { base, params: { select_topk: 0.5 } },
    nearswap: { base, models: [models[0]!], params: { t: 0.05 } },
    passthrough: { models: [models[0]!], modelParams: [{ scale: 2 }] },
  };
  for (const name of ALL) {
    test(`${name} leaves its inputs untouched and returns a fresh array`, () => {
      const spec = getMethod(name);
      const extra = inputs[name] ?? {
        base,
        modelParams: models.map((_, i) => ({ weight: 0.5 + i, density: 0.5, gamma: 0.1, epsilon: 0.1 })),
      };
      const input: MergeInput = { tensorName: "t.weight", models, ...extra };
      const before = [...input.models, ...(input.base ? [input.base] : [])].map((t) => t.data.slice());
      const out = spec.merge(input);
      const after = [...input.models, ...(input.base ? [input.base] : [])];
      after.forEach((t, i) => {
        assert.deepEqual(t.data, before[i], `input ${i} modified`);
        assert.notEqual(t.data.buffer, out.data.buffer, "output aliases an input");
      });
      assert.deepEqual(out.shape, shape);
      assert.ok(out.data.every(Number.isFinite));
    });
  }
});
