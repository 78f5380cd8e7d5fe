import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  baseModelOf,
  evaluateSetting,
  layerT,
  type MergeConfig,
  normalizeToSlices,
  ParameterReader,
  type ParameterValue,
  parseMergeConfig,
  referencedModels,
  resolveParameter,
  tokenizerSourceModel,
} from "../../src/config/index.js";
import { FusionError } from "../../src/errors.js";

function close(actual: ParameterValue | undefined, expected: number, message?: string): void {
  assert.equal(typeof actual, "number", message);
  assert.ok(Math.abs((actual as number) - expected) < 1e-12, `${message ?? ""}: ${String(actual)} != ${expected}`);
}

describe("evaluateSetting", () => {
  it("scalars are themselves, whatever the tensor or t", () => {
    assert.equal(evaluateSetting("model.layers.0.mlp.up_proj.weight", 0.5, 0.3), 0.5);
    assert.equal(evaluateSetting(undefined, true), true);
    assert.equal(evaluateSetting("x", "sum", 1), "sum");
  });

  it("gradients of length 1..5 at t = 0, 0.25, 1", () => {
    const cases: [number[], [number, number, number]][] = [
      [[0.7], [0.7, 0.7, 0.7]],
      [
        [0, 1],
        [0, 0.25, 1],
      ],
      [
        [1, 0.7, 0.1],
        [1, 0.85, 0.1],
      ], // t=0.25: halfway between 1 and 0.7
      [
        [0, 0.3, 0.7, 1],
        [0, 0.225, 1],
      ], // t=0.25: 3/4 of the way from 0 to 0.3
      [
        [0, 0.5, 0.3, 0.7, 1],
        [0, 0.5, 1],
      ], // t=0.25 lands exactly on element 1
    ];
    for (const [gradient, [at0, atQuarter, at1]] of cases) {
      close(evaluateSetting("w", gradient, 0), at0, `${gradient} @0`);
      close(evaluateSetting("w", gradient, 0.25), atQuarter, `${gradient} @0.25`);
      close(evaluateSetting("w", gradient, 1), at1, `${gradient} @1`);
    }
  });

  it("interpolates between the two nearest points", () => {
    const g = [0, 0.5, 0.3, 0.7, 1];
    close(evaluateSetting("w", g, 0.375), 0.4); // scaled 1.5: between 0.5 and 0.3
    close(evaluateSetting("w", g, 0.5), 0.3);
    close(evaluateSetting("w", g, 0.9), 0.88); // scaled 3.6: 0.4 * 0.7 + 0.6 * 1
    close(evaluateSetting("w", g), 0); // t defaults to 0
  });

  it("lists of non-numbers pick element trunc(t * (n - 1)) without interpolating", () => {
    const modes = ["a", "b", "c"];
    assert.equal(evaluateSetting("w", modes, 0), "a");
    assert.equal(evaluateSetting("w", modes, 0.49), "a");
    assert.equal(evaluateSetting("w", modes, 0.5), "b");
    assert.equal(evaluateSetting("w", modes, 0.99), "b");
    assert.equal(evaluateSetting("w", modes, 1), "c");
    assert.equal(evaluateSetting("w", [true, false], 0.6), true);
  });

  it("conditionals: first match wins; absent filter and * match everything; no match is undefined", () => {
    const t = [
      { filter: "self_attn", value: [0, 1] },
      { filter: "mlp", value: 0.9 },
      { filter: "attn", value: 0.1 },
      { value: 0.5 },
    ];
    close(evaluateSetting("model.layers.3.self_attn.q_proj.weight", t, 0.25), 0.25);
    close(evaluateSetting("model.layers.3.mlp.down_proj.weight", t, 0.25), 0.9);
    close(evaluateSetting("model.layers.3.cross_attn.k.weight", t), 0.1);
    close(evaluateSetting("model.norm.weight", t), 0.5);

    assert.equal(evaluateSetting("lm_head.weight", [{ filter: "*", value: 2 }]), 2);
    assert.equal(evaluateSetting("lm_head.weight", { value: 3 }), 3);
    assert.equal(evaluateSetting("lm_head.weight", { filter: "mlp", value: 3 }), undefined);
    assert.equal(evaluateSetting("lm_head.weight", [{ filter: "mlp", value: 1 }]), undefined);
    // without a tensor name only unfiltered and * conditionals match
    assert.equal(
      evaluateSetting(undefined, [
        { filter: "mlp", value: 1 },
        { filter: "*", value: 4 },
      ]),
      4,
    );
  });

  it("refuses t outside [0, 1]", () => {
    assert.throws(
      () => evaluateSetting("w", [0, 1], 1.5),
      (e: unknown) => e instanceof FusionError,
    );
  });
});

describe("layerT", () => {
  it("spreads a slice's layers over [0, 1]; a single layer gets 1", () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4].map((i) => layerT(i, 5)),
      [0, 0.25, 0.5, 0.75, 1],
    );
    assert.equal(layerT(0, 1), 1);
  });
});

const SLICED: MergeConfig = parseMergeConfig(`
merge_method: ties
base_model: base
slices:
  - sources:
      - model: a
        layer_range: [0, 4]
        parameters:
          weight: 0.9
          density: { filter: mlp, value: 0.2 }
      - model: b
        layer_range: [0, 4]
      - model: base
        layer_range: [0, 4]
    parameters:
      weight: 0.5
      density: [0.1, 0.3]
  - sources:
      - model: a
        layer_range: [4, 8]
      - model: b
        layer_range: [4, 8]
    base_model: b
parameters:
  weight: 0.1
  density: 0.7
  normalize: true
  lambda:
    - filter: never
      value: 1
`);
const [S0, S1] = SLICED.slices!;

describe("resolveParameter: precedence", () => {
  it("source > slice > global", () => {
    assert.equal(resolveParameter(SLICED, "weight", { slice: S0 }, { model: "a" }), 0.9);
    assert.equal(resolveParameter(SLICED, "weight", { slice: S0 }, { model: "b" }), 0.5);
    assert.equal(resolveParameter(SLICED, "weight", { slice: S1 }, { model: "a" }), 0.1);
    assert.equal(resolveParameter(SLICED, "normalize", { slice: S0 }), true);
  });

  it("source parameters count only when a model is given, and only for that model", () => {
    assert.equal(resolveParameter(SLICED, "weight", { slice: S0 }), 0.5);
    assert.equal(resolveParameter(SLICED, "weight", { slice: S0 }, { model: "nobody" }), 0.5);
    assert.equal(resolveParameter(SLICED, "weight", {}, { model: "a" }), 0.1);
  });

  it("a conditional that matches nothing falls through to the next level", () => {
    const mlp = "model.layers.1.mlp.up_proj.weight";
    const attn = "model.layers.1.self_attn.q_proj.weight";
    assert.equal(resolveParameter(SLICED, "density", { slice: S0, tensorName: mlp }, { model: "a" }), 0.2);
    close(resolveParameter(SLICED, "density", { slice: S0, tensorName: attn, t: 0.5 }, { model: "a" }), 0.2);
    close(resolveParameter(SLICED, "density", { slice: S0, tensorName: attn, t: 1 }, { model: "a" }), 0.3);
    assert.equal(resolveParameter(SLICED, "density", { slice: S1, tensorName: attn }, { model: "a" }), 0.7);
    assert.equal(resolveParameter(SLICED, "lambda", { tensorName: attn }), undefined);
    assert.equal(resolveParameter(SLICED, "lambda", { tensorName: attn }, { default: 1 }), 1);
  });

  it("missing: the default, or for required parameters an error naming parameter, model and tensor", () => {
    assert.equal(resolveParameter(SLICED, "epsilon", { slice: S0 }), undefined);
    assert.equal(resolveParameter(SLICED, "epsilon", { slice: S0 }, { default: 0.01 }), 0.01);
    assert.equal(resolveParameter(SLICED, "weight", { slice: S0 }, { required: true, default: 3 }), 0.5);
    assert.throws(
      () =>
        resolveParameter(
          SLICED,
          "epsilon",
          { slice: S0, tensorName: "model.norm.weight" },
          { model: "b", required: true },
        ),
      (e: unknown) =>
        e instanceof FusionError &&
        e.code === "CONFIG_INVALID" &&
        e.tensor === "model.norm.weight" &&
        e.message.includes("'epsilon'") &&
        e.message.includes("model 'b'") &&
        e.message.includes("model.norm.weight"),
    );
    assert.throws(() => resolveParameter(SLICED, "epsilon", {}, { required: true }), /required parameter 'epsilon'/);
  });

  it("ParameterReader narrows to slice, tensor and t like mergekit's ConfigReader", () => {
    const reader = new ParameterReader(SLICED);
    assert.equal(reader.baseModel, "base");
    assert.equal(reader.parameter("weight", { model: "a" }), 0.1);
    const s0 = reader.forSlice(S0);
    assert.equal(s0.parameter("weight", { model: "a" }), 0.9);
    close(
      s0.forTensor("model.layers.0.self_attn.o_proj.weight").withT(layerT(2, 4)).parameter("density"),
      0.1 + 0.2 * (2 / 3),
    );
    assert.equal(reader.forSlice(S1).baseModel, "b");
    assert.equal(baseModelOf(SLICED, S1), "b");
    assert.equal(baseModelOf(SLICED), "base");
    assert.deepEqual(reader.context, {}); // readers are immutable
  });
});

describe("normalizeToSlices", () => {
  const layers = (m: string) => ({ a: 32, b: 32, base: 32, other: 40 })[m] ?? 0;

  it("turns models: into one slice, carrying parameters, and appends a base model that is not among them", () => {
    const config = parseMergeConfig(`
merge_method: ties
base_model: base
models:
  - model: a
    parameters: { weight: 1, density: [1, 0.5] }
  - model: b
`);
    assert.deepEqual(normalizeToSlices(config, layers), [
      {
        sources: [
          { model: "a", layer_range: [0, 32], parameters: { weight: 1, density: [1, 0.5] } },
          { model: "b", layer_range: [0, 32] },
          { model: "base", layer_range: [0, 32] },
        ],
      },
    ]);
  });

  it("does not append a base model that is already a model, and keeps its parameters", () => {
    const config = parseMergeConfig(`
merge_method: ties
base_model: b
models:
  - model: a
  - model: b
    parameters: { weight: 0.2 }
`);
    const slices = normalizeToSlices(config, layers);
    assert.deepEqual(slices[0]?.sources, [
      { model: "a", layer_range: [0, 32] },
      { model: "b", layer_range: [0, 32], parameters: { weight: 0.2 } },
    ]);
    // per-model parameters now resolve as source parameters
    assert.equal(resolveParameter(config, "weight", { slice: slices[0] }, { model: "b" }), 0.2);
  });

  it("asks each model for its own layer count and returns slices: unchanged", () => {
    const config = parseMergeConfig("merge_method: linear\nmodels: [{ model: other }]\n");
    assert.deepEqual(normalizeToSlices(config, layers)[0]?.sources[0]?.layer_range, [0, 40]);
    assert.equal(normalizeToSlices(SLICED, layers), SLICED.slices);
  });
});

describe("referencedModels and tokenizerSourceModel", () => {
  it("unique models in first-appearance order, base model first", () => {
    const config = parseMergeConfig(`
merge_method: ties
base_model: z
models: [{ model: a }, { model: z }, { model: b }, { model: a }]
`);
    assert.deepEqual(referencedModels(config), ["z", "a", "b"]);
  });

  it("slices: each slice's base model then its sources", () => {
    assert.deepEqual(referencedModels(SLICED), ["base", "a", "b"]);
    const config = parseMergeConfig(`
merge_method: passthrough
slices:
  - sources: [{ model: x, layer_range: [0, 2] }]
  - sources: [{ model: y, layer_range: [2, 4] }]
    base_model: w
`);
    assert.deepEqual(referencedModels(config), ["x", "w", "y"]);
  });

  it("tokenizer source: base means the base model, else the first referenced model", () => {
    const head = "merge_method: linear\nmodels: [{ model: a }, { model: b }]\n";
    assert.equal(tokenizerSourceModel(parseMergeConfig(head)), undefined);
    assert.equal(tokenizerSourceModel(parseMergeConfig(`${head}tokenizer_source: base\n`)), "a");
    assert.equal(tokenizerSourceModel(parseMergeConfig(`${head}base_model: c\ntokenizer_source: base\n`)), "c");
    assert.equal(tokenizerSourceModel(parseMergeConfig(`${head}tokenizer_source: b\n`)), "b");
  });
});
