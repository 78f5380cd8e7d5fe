import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { dtypeFromConfig, loadMergeConfig, type MergeConfig, parseMergeConfig } from "../../src/config/index.js";
import { FusionError, type FusionErrorCode } from "../../src/errors.js";

const FILE = "merge.yml";

/** Parses `text` expecting a FusionError with `code` whose message contains every fragment; returns the error. */
function rejects(text: string, code: FusionErrorCode, ...fragments: string[]): FusionError {
  let caught: unknown;
  try {
    parseMergeConfig(text, FILE);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof FusionError, `expected a FusionError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.file, FILE);
  for (const f of fragments) assert.ok(caught.message.includes(f), `'${f}' not in: ${caught.message}`);
  return caught;
}

const LINEAR = `
models:
  - model: psmathur/orca_mini_v3_13b
    parameters:
      weight: 1.0
  - model: WizardLM/WizardLM-13B-V1.2
    parameters:
      weight: 0.3
  - model: garage-bAInd/Platypus2-13B
    parameters:
      weight: 0.5
merge_method: linear
dtype: float16
`;

const SLERP = `
slices:
  - sources:
      - model: psmathur/orca_mini_v3_13b
        layer_range: [0, 40]
      - model: garage-bAInd/Platypus2-13B
        layer_range: [0, 40]
merge_method: slerp
base_model: psmathur/orca_mini_v3_13b
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 0.3, 0.7, 1]
    - filter: mlp
      value: [1, 0.5, 0.7, 0.3, 0]
    - value: 0.5 # fallback for the other tensors
dtype: bfloat16
`;

const TIES = `
models:
  - model: psmathur/orca_mini_v3_13b
    parameters:
      density: [1, 0.7, 0.1] # density gradient
      weight: 1.0
  - model: garage-bAInd/Platypus2-13B
    parameters:
      density: 0.5
      weight: [0, 0.3, 0.7, 1] # weight gradient
  - model: WizardLM/WizardMath-13B-V1.0
    parameters:
      density: 0.33
      weight:
        - filter: mlp
          value: 0.5
        - value: 0
merge_method: ties
base_model: TheBloke/Llama-2-13B-fp16
parameters:
  normalize: true
  int8_mask: true
dtype: float16
`;

const DARE_TIES = `
models:
  - model: mistralai/Mistral-7B-v0.1
    # no parameters necessary for base model
  - model: samir-fama/SamirGPT-v1
    parameters:
      density: 0.53
      weight: 0.4
  - model: abacusai/Slerp-CM-mist-dpo
    parameters:
      density: 0.53
      weight: 0.3
merge_method: dare_ties
base_model: mistralai/Mistral-7B-v0.1
parameters:
  int8_mask: true
dtype: bfloat16
out_dtype: torch.float16
tokenizer_source: base
chat_template: chatml
`;

const PASSTHROUGH = `
slices:
  - sources:
    - model: psmathur/orca_mini_v3_13b
      layer_range: [0, 24]
  - sources:
    - model: garage-bAInd/Platypus2-13B
      layer_range: [20, 40]
merge_method: passthrough
dtype: float16
`;

describe("parseMergeConfig: mergekit example configs", () => {
  it("linear with per-model weights", () => {
    const config = parseMergeConfig(LINEAR, FILE);
    const expected: MergeConfig = {
      merge_method: "linear",
      models: [
        { model: "psmathur/orca_mini_v3_13b", parameters: { weight: 1 } },
        { model: "WizardLM/WizardLM-13B-V1.2", parameters: { weight: 0.3 } },
        { model: "garage-bAInd/Platypus2-13B", parameters: { weight: 0.5 } },
      ],
      dtype: "F16",
      source: FILE,
    };
    assert.deepEqual(config, expected);
  });

  it("slerp with filtered t gradients and a fallback", () => {
    const config = parseMergeConfig(SLERP);
    assert.equal(config.source, undefined);
    assert.equal(config.base_model, "psmathur/orca_mini_v3_13b");
    assert.equal(config.dtype, "BF16");
    assert.deepEqual(config.slices, [
      {
        sources: [
          { model: "psmathur/orca_mini_v3_13b", layer_range: [0, 40] },
          { model: "garage-bAInd/Platypus2-13B", layer_range: [0, 40] },
        ],
      },
    ]);
    assert.deepEqual(config.parameters, {
      t: [
        { filter: "self_attn", value: [0, 0.5, 0.3, 0.7, 1] },
        { filter: "mlp", value: [1, 0.5, 0.7, 0.3, 0] },
        { value: 0.5 },
      ],
    });
  });

  it("ties with density / weight gradients per model and normalize", () => {
    const config = parseMergeConfig(TIES, FILE);
    assert.equal(config.models?.length, 3);
    assert.deepEqual(config.models?.[0]?.parameters, { density: [1, 0.7, 0.1], weight: 1 });
    assert.deepEqual(config.models?.[1]?.parameters, { density: 0.5, weight: [0, 0.3, 0.7, 1] });
    assert.deepEqual(config.models?.[2]?.parameters?.weight, [{ filter: "mlp", value: 0.5 }, { value: 0 }]);
    assert.deepEqual(config.parameters, { normalize: true, int8_mask: true });
    assert.equal(config.base_model, "TheBloke/Llama-2-13B-fp16");
  });

  it("dare_ties with int8_mask, a base model without parameters, out_dtype, tokenizer and chat template", () => {
    const config = parseMergeConfig(DARE_TIES, FILE);
    assert.deepEqual(config.models?.[0], { model: "mistralai/Mistral-7B-v0.1" });
    assert.deepEqual(config.parameters, { int8_mask: true });
    assert.equal(config.dtype, "BF16");
    assert.equal(config.out_dtype, "F16");
    assert.equal(config.tokenizer_source, "base");
    assert.equal(config.chat_template, "chatml");
  });

  it("a passthrough frankenmerge with overlapping layer ranges", () => {
    const config = parseMergeConfig(PASSTHROUGH, FILE);
    assert.equal(config.models, undefined);
    assert.deepEqual(
      config.slices?.map((s) => s.sources.map((src) => [src.model, src.layer_range])),
      [[["psmathur/orca_mini_v3_13b", [0, 24]]], [["garage-bAInd/Platypus2-13B", [20, 40]]]],
    );
  });

  it("slice-level base_model, residual_weight and parameters; source parameters", () => {
    const config = parseMergeConfig(
      `
merge_method: task_arithmetic
slices:
  - sources:
      - model: a
        layer_range: [0, 8]
        parameters: { weight: 0.7 }
      - model: b
        layer_range: [8, 16]
    base_model: b
    residual_weight: 0.1
    parameters:
      lambda: 0.9
`,
      FILE,
    );
    assert.deepEqual(config.slices, [
      {
        sources: [
          { model: "a", layer_range: [0, 8], parameters: { weight: 0.7 } },
          { model: "b", layer_range: [8, 16] },
        ],
        base_model: "b",
        residual_weight: 0.1,
        parameters: { lambda: 0.9 },
      },
    ]);
  });

  it("merge keys (<<: *anchor) and anchors / aliases", () => {
    const config = parseMergeConfig(
      `
models:
  - model: a
    parameters: &defaults
      density: 0.5
      weight: 0.5
  - model: b
    parameters:
      <<: *defaults
      weight: 0.3
  - model: c
    parameters: *defaults
merge_method: ties
`,
      FILE,
    );
    assert.deepEqual(config.models, [
      { model: "a", parameters: { density: 0.5, weight: 0.5 } },
      { model: "b", parameters: { density: 0.5, weight: 0.3 } },
      { model: "c", parameters: { density: 0.5, weight: 0.5 } },
    ]);
  });

  it("accepts null for optional keys, string and boolean parameters, unfiltered and * filters", () => {
    const config = parseMergeConfig(
      `
merge_method: linear
base_model:
models:
  - model: a
    parameters:
  - model: b
    parameters:
      weight: { filter: "*", value: 2 }
      mode: sum
      flag: false
      t: [{ filter: null, value: 1 }]
dtype: ~
`,
      FILE,
    );
    assert.deepEqual(config, {
      merge_method: "linear",
      models: [
        { model: "a" },
        {
          model: "b",
          parameters: { weight: { filter: "*", value: 2 }, mode: "sum", flag: false, t: [{ value: 1 }] },
        },
      ],
      source: FILE,
    });
  });

  it("maps a tokenizer: block that only names a source onto tokenizer_source", () => {
    const base = "merge_method: linear\nmodels: [{ model: a }, { model: b }]\n";
    assert.equal(parseMergeConfig(`${base}tokenizer: { source: base }`).tokenizer_source, "base");
    assert.equal(parseMergeConfig(`${base}tokenizer: { source: b, tokens: {} }`).tokenizer_source, "b");
  });
});

describe("parseMergeConfig: errors", () => {
  const ok = "merge_method: linear\nmodels:\n  - model: a\n  - model: b\n";

  it("YAML syntax errors name the file, line and column", () => {
    const e = rejects("merge_method: linear\nmodels: [{model: a}\n", "CONFIG_INVALID", "merge.yml", "line 3, column 1");
    assert.equal(e.key, undefined);
    rejects("merge_method: linear\nmodels:\n  - model: a\n   bad: 1\n", "CONFIG_INVALID", "line 4");
    rejects("merge_method: [1, 2\n", "CONFIG_INVALID", "YAML error at line");
  });

  it("duplicate keys, several documents, unknown tags and unresolved aliases are errors", () => {
    rejects(`${ok}merge_method: ties\n`, "CONFIG_INVALID", "unique", "line 5, column 1");
    rejects(`${ok}---\nmerge_method: ties\n`, "CONFIG_INVALID", "multiple documents");
    rejects(`${ok}dtype: !!python/name float16\n`, "CONFIG_INVALID", "tag", "line 5");
    rejects(`${ok}base_model: *nowhere\n`, "CONFIG_INVALID", "nowhere");
  });

  it("the document must be a mapping", () => {
    rejects("", "CONFIG_INVALID", "top level");
    rejects("- model: a\n", "CONFIG_INVALID", "top level");
    rejects("linear\n", "CONFIG_INVALID", "top level");
  });

  it("unknown keys at any depth, with their path and a did-you-mean hint", () => {
    let e = rejects(`${ok}merge_methods: x\n`, "CONFIG_INVALID", "merge_methods", "unknown key", "merge_method");
    assert.equal(e.key, "merge_methods");
    e = rejects(
      "merge_method: linear\nmodels:\n  - model: a\n    paramters: { weight: 1 }\n",
      "CONFIG_INVALID",
      "models[0].paramters",
      "did you mean 'parameters'",
      "line 4",
    );
    assert.equal(e.key, "models[0].paramters");
    rejects(
      "merge_method: x\nslices:\n  - sources:\n      - model: a\n        layer_range: [0, 2]\n        weight: 1\n",
      "CONFIG_INVALID",
      "slices[0].sources[0].weight",
      "expected one of: model, layer_range, parameters",
    );
    rejects(
      "merge_method: x\nslices:\n  - sources: [{ model: a, layer_range: [0, 2] }]\n    residual: 1\n",
      "CONFIG_INVALID",
      "slices[0].residual",
      "did you mean 'residual_weight'",
    );
    rejects(
      `${SLERP}`.replace("- value: 0.5", "- valeu: 0.5"),
      "CONFIG_INVALID",
      "parameters.t[2].valeu",
      "did you mean 'value'",
    );
    rejects(`${ok}tokenizer: { source: base, extra: 1 }\n`, "CONFIG_INVALID", "tokenizer.extra");
    rejects(`${ok}source: x.yml\n`, "CONFIG_INVALID", "'source'");
  });

  it("wrong types, with their path and what was expected", () => {
    let e = rejects(
      TIES.replace("density: 0.5", 'density: [0.5, "high"]'),
      "CONFIG_INVALID",
      "models[1].parameters.density[1]",
      "expected a number",
      'got string "high"',
    );
    assert.equal(e.key, "models[1].parameters.density[1]");
    e = rejects(TIES.replace("density: 0.5", "density:"), "CONFIG_INVALID", "models[1].parameters.density", "empty");
    rejects(TIES.replace("density: 0.5", "density: []"), "CONFIG_INVALID", "models[1].parameters.density", "non-empty");
    rejects(TIES.replace("density: 0.5", "density: .nan"), "CONFIG_INVALID", "finite number");
    rejects(TIES.replace("density: 0.5", "density: [a, b]"), "CONFIG_INVALID", "density[0]", "gradient");
    rejects(TIES.replace("- value: 0", "- 0"), "CONFIG_INVALID", "models[2].parameters.weight[1]", "{filter, value}");
    rejects(TIES.replace("value: 0.5", "value: { x: 1 }"), "CONFIG_INVALID", "weight[0].value", "got a mapping");
    rejects(TIES.replace("- value: 0", "- filter: mlp"), "CONFIG_INVALID", "weight[1].value", "missing");
    rejects(TIES.replace("filter: mlp", "filter: 3"), "CONFIG_INVALID", "weight[0].filter", "expected a string");
    rejects("merge_method: 3\nmodels: [{ model: a }]\n", "CONFIG_INVALID", "merge_method", "got number 3");
    rejects("models: [{ model: a }]\n", "CONFIG_INVALID", "merge_method", "required key is missing");
    rejects("merge_method: x\nmodels: [{ model: 7 }]\n", "CONFIG_INVALID", "models[0].model", "model name");
    rejects("merge_method: x\nmodels: [{ parameters: {} }]\n", "CONFIG_INVALID", "models[0].model", "missing");
    rejects("merge_method: x\nmodels: a\n", "CONFIG_INVALID", "'models'", "expected a list of models");
    rejects("merge_method: x\nmodels: [a]\n", "CONFIG_INVALID", "models[0]", "expected a mapping");
    rejects("merge_method: x\nmodels: []\n", "CONFIG_INVALID", "'models'", "at least one model");
    rejects(`${ok}parameters: [1]\n`, "CONFIG_INVALID", "'parameters'", "mapping of parameter names");
    rejects(`${ok}chat_template: 1\n`, "CONFIG_INVALID", "chat_template");
    rejects("merge_method: x\nslices: 1\n", "CONFIG_INVALID", "'slices'", "expected a list of slices");
    rejects(
      "merge_method: x\nslices:\n  - sources: [{ model: a, layer_range: [0, 2] }]\n    residual_weight: big\n",
      "CONFIG_INVALID",
      "slices[0].residual_weight",
      "expected a number",
    );
    rejects(
      "merge_method: x\nslices:\n  - sources: []\n",
      "CONFIG_INVALID",
      "slices[0].sources",
      "at least one source",
    );
  });

  it("reports several problems in one message, each with its path", () => {
    const e = rejects(
      "merge_method: x\nmodels:\n  - model: a\n    parameters: { weight: [1, x] }\n  - model: b\n    paramters: {}\n",
      "CONFIG_INVALID",
      "also models[0].parameters.weight[1]",
      "line 4",
    );
    // unknown keys come first: a misspelling usually explains the other problems
    assert.equal(e.key, "models[1].paramters");
    assert.match(e.message, /line 6/);
    const misspelt = rejects("merge_methd: x\nmodels: [{ model: a }]\n", "CONFIG_INVALID", "also merge_method");
    assert.equal(misspelt.key, "merge_methd");
    assert.match(misspelt.message, /did you mean 'merge_method'/);
  });

  it("exactly one of models / slices", () => {
    const both = rejects(
      `${ok}slices:\n  - sources: [{ model: a, layer_range: [0, 1] }]\n`,
      "CONFIG_INVALID",
      "not both",
    );
    assert.equal(both.key, "slices");
    rejects("merge_method: linear\nbase_model: a\n", "CONFIG_INVALID", "models:", "slices:", "neither");
    rejects("merge_method: linear\nmodels:\nslices:\n", "CONFIG_INVALID", "neither");
  });

  it("modules: is not supported yet", () => {
    const e = rejects(`${ok}modules:\n  text_decoder: {}\n`, "NOT_SUPPORTED", "modules", "not supported yet");
    assert.equal(e.key, "modules");
  });

  it("tokenizer_source: union and non-trivial tokenizer blocks are not supported yet", () => {
    let e = rejects(`${ok}tokenizer_source: union\n`, "NOT_SUPPORTED", "tokenizer_source: union is not supported yet");
    assert.equal(e.key, "tokenizer_source");
    e = rejects(`${ok}tokenizer: {}\n`, "NOT_SUPPORTED", "union", "not supported yet");
    assert.equal(e.key, "tokenizer");
    rejects(`${ok}tokenizer: { source: union }\n`, "NOT_SUPPORTED", "tokenizer.source", "union");
    rejects(
      `${ok}tokenizer:\n  source: base\n  tokens:\n    <|im_start|>: { source: a }\n`,
      "NOT_SUPPORTED",
      "tokenizer.tokens",
    );
    rejects(
      `${ok}tokenizer: { source: base, pad_to_multiple_of: 64 }\n`,
      "NOT_SUPPORTED",
      "tokenizer.pad_to_multiple_of",
    );
    rejects(`${ok}tokenizer_source: base\ntokenizer: { source: base }\n`, "CONFIG_INVALID", "tokenizer", "not both");
    rejects(`${ok}tokenizer_source: 3\n`, "CONFIG_INVALID", "tokenizer_source", "got number 3");
  });

  it("model+lora references are not supported yet, wherever they appear", () => {
    const e = rejects(
      "merge_method: x\nmodels:\n  - model: a\n  - model: org/base+org/lora\n",
      "NOT_SUPPORTED",
      "models[1].model",
      "LoRA",
      "org/base+org/lora",
    );
    assert.equal(e.key, "models[1].model");
    rejects(`${ok}base_model: b+l\n`, "NOT_SUPPORTED", "base_model", "LoRA");
    rejects(`${ok}tokenizer_source: b+l\n`, "NOT_SUPPORTED", "tokenizer_source", "LoRA");
    rejects(
      "merge_method: x\nslices:\n  - sources: [{ model: a+l, layer_range: [0, 1] }]\n",
      "NOT_SUPPORTED",
      "slices[0].sources[0].model",
    );
    rejects(
      "merge_method: x\nslices:\n  - sources: [{ model: a, layer_range: [0, 1] }]\n    base_model: b+l\n",
      "NOT_SUPPORTED",
      "slices[0].base_model",
    );
  });

  it("bad dtype / out_dtype names quote the key", () => {
    let e = rejects(`${ok}dtype: float64\n`, "CONFIG_INVALID", "'dtype'", '"float64"', "bfloat16");
    assert.equal(e.key, "dtype");
    e = rejects(`${ok}out_dtype: fp8\n`, "CONFIG_INVALID", "'out_dtype'", '"fp8"');
    assert.equal(e.key, "out_dtype");
    rejects(`${ok}dtype: int64\n`, "NOT_SUPPORTED", "'dtype'", "int64");
    rejects(`${ok}dtype: 16\n`, "CONFIG_INVALID", "dtype", "got number 16");
  });

  it("bad layer_range: shape, integers, sign, order, and equal spans within a slice", () => {
    const slice = (range: string, second = "[0, 4]") =>
      `merge_method: x\nslices:\n  - sources:\n    - model: a\n      layer_range: [0, 4]\n    - model: b\n      layer_range: ${range}\n    - model: c\n      layer_range: ${second}\n`;
    const path = "slices[0].sources[1].layer_range";
    rejects(slice("[4]"), "CONFIG_INVALID", path, "[start, end]");
    rejects(slice("[0, 4, 8]"), "CONFIG_INVALID", path, "[start, end]");
    rejects(slice('"0-4"'), "CONFIG_INVALID", path, "[start, end]", 'got string "0-4"');
    rejects(slice("[0, 3.5]"), "CONFIG_INVALID", `${path}[1]`, "integers");
    rejects(slice("[-1, 3]"), "CONFIG_INVALID", `${path}[0]`, "non-negative", "got number -1");
    rejects(slice("[5, 1]"), "CONFIG_INVALID", path, "start <= end", "line 7");
    rejects(slice("[2, 4]"), "CONFIG_INVALID", path, "spans 2 layers", "sources[0] spans 4");
    rejects(slice("[4, 8]", "[1, 4]"), "CONFIG_INVALID", "slices[0].sources[2].layer_range", "spans 3");
    rejects(
      "merge_method: x\nslices:\n  - sources: [{ model: a }]\n",
      "CONFIG_INVALID",
      "slices[0].sources[0].layer_range",
      "missing",
    );
  });
});

describe("dtypeFromConfig", () => {
  it("accepts mergekit's names, torch.* spellings and the short aliases", () => {
    const table: Record<string, string> = {
      float32: "F32",
      "torch.float32": "F32",
      fp32: "F32",
      float: "F32",
      F32: "F32",
      float16: "F16",
      "torch.float16": "F16",
      fp16: "F16",
      half: "F16",
      bfloat16: "BF16",
      "torch.bfloat16": "BF16",
      bf16: "BF16",
      BF16: "BF16",
    };
    for (const [name, dtype] of Object.entries(table)) assert.equal(dtypeFromConfig(name), dtype, name);
  });

  it("refuses the rest, quoting the key it was given", () => {
    assert.throws(
      () => dtypeFromConfig("float64", "out_dtype", "x.yml"),
      (e: unknown) =>
        e instanceof FusionError && e.code === "CONFIG_INVALID" && e.key === "out_dtype" && e.file === "x.yml",
    );
    assert.throws(() => dtypeFromConfig("torch.int8"), /key 'dtype'/);
  });
});

describe("loadMergeConfig", () => {
  const dir = mkdtempSync(join(tmpdir(), "fusionkit-config-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("reads a file and records where it came from", () => {
    const path = join(dir, "ties.yml");
    writeFileSync(path, TIES);
    const config = loadMergeConfig(path);
    assert.equal(config.source, path);
    assert.equal(config.merge_method, "ties");
  });

  it("names the file in errors", () => {
    const path = join(dir, "bad.yml");
    writeFileSync(path, "merge_method: x\nmodels: [{ model: a }]\ndtype: fp64\n");
    assert.throws(
      () => loadMergeConfig(path),
      (e: unknown) => e instanceof FusionError && e.file === path,
    );
    assert.throws(
      () => loadMergeConfig(join(dir, "missing.yml")),
      (e: unknown) => e instanceof FusionError && e.code === "FILE_NOT_FOUND",
    );
  });
});
