import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { merge } from "../../src/engine/merge.js";
import { FusionError } from "../../src/errors.js";
import { ModelDir } from "../../src/io/model-dir.js";
import { getMethod } from "../../src/merge/registry.js";
import { toFloat32 } from "../../src/tensor/convert.js";
import { writeModelSet } from "../helpers/models.js";
import { tempDir } from "../helpers/tmp.js";

const root = tempDir("engine");
writeModelSet(root);
const p = (name: string) => join(root, name);

function writeConfig(name: string, yaml: string): string {
  const path = join(root, `${name}.yml`);
  writeFileSync(path, yaml);
  return path;
}

function readModel(dir: string) {
  const m = ModelDir.open(dir);
  const tensors = new Map(m.stateDict.names().map((n) => [n, m.stateDict.read(n)]));
  const config = m.config();
  const shards = m.shards.length;
  m.close();
  return { tensors, config, shards };
}

function values(dir: string, tensor: string): Float32Array {
  return toFloat32(readModel(dir).tensors.get(tensor)!);
}

const base = readModel(p("base"));
const fts = [1, 2, 3].map((i) => readModel(p(`ft${i}`)));
const Q0 = "model.layers.0.self_attn.q_proj.weight";

function assertClose(actual: Float32Array, expected: Float32Array, tol = 1e-6): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(
      Math.abs(actual[i]! - expected[i]!) <= tol * (1 + Math.abs(expected[i]!)),
      `element ${i}: ${actual[i]} vs ${expected[i]}`,
    );
  }
}

describe("merge: methods end to end on tiny Llama checkpoints", () => {
  it("linear: weighted average of every tensor, config.json and card written", async () => {
    const cfg = writeConfig(
      "linear",
      `merge_method: linear\nmodels:\n  - model: ${p("ft1")}\n    parameters: {weight: 0.25}\n  - model: ${p("ft2")}\n    parameters: {weight: 0.75}\n`,
    );
    const out = p("out-linear");
    const s = await merge(cfg, out, { jobs: 1 });
    assert.equal(s.tensors, base.tensors.size);
    const r = readModel(out);
    assert.deepEqual([...r.tensors.keys()].sort(), [...base.tensors.keys()].sort());
    for (const name of [Q0, "model.embed_tokens.weight", "model.norm.weight"]) {
      const a = toFloat32(fts[0]!.tensors.get(name)!);
      const b = toFloat32(fts[1]!.tensors.get(name)!);
      assertClose(
        values(out, name),
        a.map((x, i) => 0.25 * x + 0.75 * b[i]!),
      );
    }
    assert.equal(r.config?.num_hidden_layers, 4);
    assert.equal(r.config?.architectures?.toString(), "LlamaForCausalLM");
    const card = readFileSync(join(out, "README.md"), "utf8");
    assert.match(card, /^---\n/);
    assert.match(card, /tags:\n {2}- merge\n {2}- fusionkit/);
    assert.match(card, /merge_method: linear/);
    assert.ok(existsSync(join(out, "mergekit_config.yml")));
    assert.ok(existsSync(join(out, "tokenizer.json")), "tokenizer copied from the first model's donor by default");
  });

  for (const method of [
    "task_arithmetic",
    "ties",
    "dare_ties",
    "dare_linear",
    "breadcrumbs",
    "breadcrumbs_ties",
    "della",
    "della_linear",
    "sce",
    "model_stock",
  ]) {
    it(`${method}: engine output equals the method applied to the same tensors`, async () => {
      const dense = method === "model_stock" || method === "task_arithmetic" || method === "sce";
      const params = dense ? "" : "\nparameters: {density: 0.5}";
      const weights = method === "model_stock" || method === "sce" ? "" : "\n    parameters: {weight: 0.6}";
      const cfg = writeConfig(
        method,
        `merge_method: ${method}\nbase_model: ${p("base")}${params}\nmodels:\n  - model: ${p("ft1")}${weights}\n  - model: ${p("ft2")}${weights}\n  - model: ${p("ft3")}${weights}\n`,
      );
      const out = p(`out-${method}`);
      await merge(cfg, out, { jobs: 1, randomSeed: 3 });
      const spec = getMethod(method);
      for (const name of [Q0, "model.norm.weight"]) {
        const expected = spec.merge({
          tensorName: name,
          models: fts.map((m) => ({ data: toFloat32(m.tensors.get(name)!), shape: m.tensors.get(name)!.shape })),
          base: { data: toFloat32(base.tensors.get(name)!), shape: base.tensors.get(name)!.shape },
          modelParams: fts.map(() => ({
            ...(weights === "" ? {} : { weight: 0.6 }),
            ...(dense ? {} : { density: 0.5 }),
          })),
          seed: 3,
        });
        assertClose(values(out, name), expected.data, 0);
      }
    });
  }

  it("slerp with a t gradient over layers: first layer is the base, last the other model", async () => {
    const cfg = writeConfig(
      "slerp",
      `merge_method: slerp\nbase_model: ${p("base")}\nmodels:\n  - model: ${p("base")}\n  - model: ${p("ft1")}\nparameters:\n  t: [0, 1]\n`,
    );
    const out = p("out-slerp");
    await merge(cfg, out, { jobs: 1 });
    assertClose(values(out, Q0), toFloat32(base.tensors.get(Q0)!), 1e-6);
    const last = "model.layers.3.self_attn.q_proj.weight";
    assertClose(values(out, last), toFloat32(fts[0]!.tensors.get(last)!), 1e-5);
  });

  it("parameter filters: the first matching filter wins, the rest take the fallback", async () => {
    const cfg = writeConfig(
      "filters",
      `merge_method: linear\nmodels:\n  - model: ${p("ft1")}\n    parameters:\n      weight:\n        - filter: self_attn\n          value: 1\n        - value: 0\n  - model: ${p("ft2")}\n    parameters:\n      weight:\n        - filter: self_attn\n          value: 0\n        - value: 1\n`,
    );
    const out = p("out-filters");
    await merge(cfg, out, { jobs: 1 });
    assertClose(values(out, Q0), toFloat32(fts[0]!.tensors.get(Q0)!), 0);
    const mlp = "model.layers.0.mlp.up_proj.weight";
    assertClose(values(out, mlp), toFloat32(fts[1]!.tensors.get(mlp)!), 0);
  });

  it("passthrough frankenmerge: slices renumber layers and update num_hidden_layers", async () => {
    const cfg = writeConfig(
      "franken",
      `merge_method: passthrough\nslices:\n  - sources:\n      - model: ${p("ft1")}\n        layer_range: [0, 3]\n  - sources:\n      - model: ${p("ft2")}\n        layer_range: [1, 4]\n`,
    );
    const out = p("out-franken");
    const s = await merge(cfg, out, { jobs: 2 });
    assert.equal(s.numLayers, 6);
    const r = readModel(out);
    assert.equal(r.config?.num_hidden_layers, 6);
    assert.equal([...r.tensors.keys()].filter((n) => n.endsWith("q_proj.weight")).length, 6);
    // output layer 3 = ft2's layer 1; embeddings from the first slice (ft1), norm and head from the last (ft2)
    assertClose(
      values(out, "model.layers.3.self_attn.q_proj.weight"),
      toFloat32(fts[1]!.tensors.get("model.layers.1.self_attn.q_proj.weight")!),
      0,
    );
    assertClose(
      values(out, "model.embed_tokens.weight"),
      toFloat32(fts[0]!.tensors.get("model.embed_tokens.weight")!),
      0,
    );
    assertClose(values(out, "lm_head.weight"), toFloat32(fts[1]!.tensors.get("lm_head.weight")!), 0);
  });

  it("dtype rounds inputs, out_dtype sets the written dtype and config torch_dtype", async () => {
    const cfg = writeConfig(
      "dtypes",
      `merge_method: linear\nmodels:\n  - model: ${p("ft1")}\n    parameters: {weight: 1}\ndtype: float16\nout_dtype: bfloat16\n`,
    );
    const out = p("out-dtypes");
    await merge(cfg, out, { jobs: 1 });
    const r = readModel(out);
    assert.ok([...r.tensors.values()].every((t) => t.dtype === "BF16"));
    assert.equal(r.config?.torch_dtype, "bfloat16");
  });

  it("shards by --out-shard-size with a Hugging Face index; tokenizer copy can be turned off", async () => {
    const cfg = writeConfig(
      "shards",
      `merge_method: linear\nmodels:\n  - model: ${p("ft1")}\n    parameters: {weight: 1}\n`,
    );
    const out = p("out-shards");
    await merge(cfg, out, { jobs: 2, outShardSize: 10_000, copyTokenizer: false });
    const files = readdirSync(out);
    assert.ok(files.includes("model.safetensors.index.json"));
    assert.ok(files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length > 3);
    assert.ok(!files.includes("tokenizer.json"));
    assert.ok(files.includes("generation_config.json"), "tag-along files are still copied");
    assert.equal(readModel(out).tensors.size, base.tensors.size);
  });

  it("random methods give identical bytes whatever the number of workers", async () => {
    const cfg = writeConfig(
      "dare-j",
      `merge_method: dare_ties\nbase_model: ${p("base")}\nparameters: {density: 0.3, weight: 0.5}\nmodels:\n  - model: ${p("ft1")}\n  - model: ${p("ft2")}\n`,
    );
    await merge(cfg, p("out-j1"), { jobs: 1, randomSeed: 9 });
    await merge(cfg, p("out-j2"), { jobs: 2, randomSeed: 9 });
    await merge(cfg, p("out-seed"), { jobs: 2, randomSeed: 10 });
    const bytes = (d: string) => readFileSync(join(d, "model.safetensors"));
    assert.ok(bytes(p("out-j1")).equals(bytes(p("out-j2"))));
    assert.ok(!bytes(p("out-j1")).equals(bytes(p("out-seed"))), "the seed matters");
  });
});

describe("merge: bad input fails cleanly, naming the culprit, leaving nothing behind", () => {
  const cases: Array<[string, string, RegExp]> = [
    ["unknown method", `merge_method: tise\nmodels:\n  - model: ${p("ft1")}\n`, /did you mean 'ties'/],
    [
      "missing required parameter",
      `merge_method: linear\nmodels:\n  - model: ${p("ft1")}\n`,
      /weight.*required|required.*weight/,
    ],
    [
      "density outside (0, 1]",
      `merge_method: ties\nbase_model: ${p("base")}\nparameters: {density: 1.5, weight: 1}\nmodels:\n  - model: ${p("ft1")}\n`,
      /density/,
    ],
    [
      "weights summing to zero with normalize",
      `merge_method: linear\nmodels:\n  - model: ${p("ft1")}\n    parameters: {weight: 1}\n  - model: ${p("ft2")}\n    parameters: {weight: -1}\n`,
      /sum/,
    ],
    [
      "missing model path",
      `merge_method: linear\nmodels:\n  - model: ${p("nope")}\n    parameters: {weight: 1}\n`,
      /models\[0\]\.model|nope/,
    ],
    ["YAML syntax error", "merge_method: linear\nmodels: [\n", /line|YAML|yaml/],
    ["unknown key", `merge_method: linear\nmodles:\n  - model: ${p("ft1")}\n`, /modles/],
  ];
  for (const [label, yaml, pattern] of cases) {
    it(label, async () => {
      const cfg = writeConfig(`bad-${label.replace(/\W+/g, "-")}`, yaml);
      const out = p(`out-bad-${label.replace(/\W+/g, "-")}`);
      const before = readdirSync(root).length;
      await assert.rejects(merge(cfg, out, { jobs: 2 }), (e: unknown) => {
        assert.ok(e instanceof FusionError, `FusionError, got ${e}`);
        assert.match(e.message, pattern);
        assert.ok(!e.message.includes("\n"), "one line");
        return true;
      });
      assert.equal(existsSync(out), false);
      assert.equal(readdirSync(root).length, before, "no temporary directory left behind");
    });
  }
});

describe("merge: tokenizer sources and broken inputs", () => {
  it("tokenizer_source names the model whose tokenizer is copied; tag-along files come from the base", async () => {
    const cfg = writeConfig(
      "toksrc",
      `merge_method: task_arithmetic\nbase_model: ${p("base")}\ntokenizer_source: ${p("ft2")}\nmodels:\n  - model: ${p("ft1")}\n    parameters: {weight: 1}\n  - model: ${p("ft2")}\n    parameters: {weight: 1}\n`,
    );
    const out = p("out-toksrc");
    await merge(cfg, out, { jobs: 1 });
    assert.equal(JSON.parse(readFileSync(join(out, "tokenizer.json"), "utf8")).from, "ft2");
    assert.equal(JSON.parse(readFileSync(join(out, "generation_config.json"), "utf8")).from, "base");
  });

  it("a tensor missing from one model is an error naming the model and tensor", async () => {
    const broken = p("broken-missing");
    writeModelSet(broken, { n: 1 });
    const m = readModel(join(broken, "ft1"));
    const { saveSafetensors } = await import("../../src/io/safetensors-write.js");
    const { rmSync } = await import("node:fs");
    rmSync(join(broken, "ft1", "model.safetensors"));
    saveSafetensors(
      join(broken, "ft1", "model.safetensors"),
      [...m.tensors].filter(([n]) => n !== Q0),
    );
    const cfg = writeConfig(
      "missing-tensor",
      `merge_method: linear\nmodels:\n  - model: ${join(broken, "base")}\n    parameters: {weight: 1}\n  - model: ${join(broken, "ft1")}\n    parameters: {weight: 1}\n`,
    );
    await assert.rejects(merge(cfg, p("out-missing-tensor"), { jobs: 1 }), (e: unknown) => {
      assert.ok(e instanceof FusionError && e.code === "TENSOR_NOT_FOUND");
      assert.match(e.message, /ft1/);
      assert.match(e.message, /q_proj/);
      return true;
    });
    assert.equal(existsSync(p("out-missing-tensor")), false);
  });

  it("a shape mismatch outside embeddings is an error naming both models; --skip-mismatched leaves it out", async () => {
    const other = p("other-width");
    const { writeSyntheticLlama } = await import("../../src/synth/llama.js");
    writeSyntheticLlama(other, {
      shape: { vocabSize: 48, hiddenSize: 16, intermediateSize: 32, numLayers: 4, numHeads: 2, numKvHeads: 1 },
      dtype: "F32",
    });
    const cfg = writeConfig(
      "mismatch",
      `merge_method: linear\nmodels:\n  - model: ${p("ft1")}\n    parameters: {weight: 1}\n  - model: ${other}\n    parameters: {weight: 1}\n`,
    );
    await assert.rejects(merge(cfg, p("out-mismatch"), { jobs: 1 }), (e: unknown) => {
      assert.ok(e instanceof FusionError && e.code === "SHAPE_MISMATCH");
      assert.match(e.message, /mlp/);
      assert.match(e.message, /other-width/);
      return true;
    });
    const warnings: string[] = [];
    const s = await merge(cfg, p("out-skip"), { jobs: 1, skipMismatched: true, onWarning: (w) => warnings.push(w) });
    assert.equal(s.tensors, base.tensors.size - 3 * 4, "the three MLP projections of each layer are left out");
    assert.equal(warnings.length, 12);
  });

  it("embeddings of different vocabulary sizes are cropped to the common rows", async () => {
    const big = p("big-vocab");
    const { writeSyntheticLlama } = await import("../../src/synth/llama.js");
    writeSyntheticLlama(big, {
      shape: { vocabSize: 56, hiddenSize: 16, intermediateSize: 24, numLayers: 4, numHeads: 2, numKvHeads: 1 },
      dtype: "F32",
      baseSeed: 5,
    });
    const cfg = writeConfig(
      "crop",
      `merge_method: linear\nmodels:\n  - model: ${big}\n    parameters: {weight: 1}\n  - model: ${p("ft1")}\n    parameters: {weight: 1}\n`,
    );
    const out = p("out-crop");
    await merge(cfg, out, { jobs: 1 });
    const r = readModel(out);
    assert.deepEqual(r.tensors.get("model.embed_tokens.weight")!.shape, [48, 16]);
    assert.deepEqual(r.tensors.get("lm_head.weight")!.shape, [48, 16]);
    assert.equal(r.config?.vocab_size, 48);
  });
});

describe("merge: the interpolation family and nearswap end to end", () => {
  const cases: Array<[string, string, { base: boolean; models: number; params: Record<string, number> }]> = [
    ["nuslerp", "parameters: {weight: 0.5}", { base: false, models: 2, params: {} }],
    ["multislerp", "parameters: {weight: 0.5}", { base: false, models: 3, params: {} }],
    ["karcher", "", { base: false, models: 3, params: {} }],
    ["nearswap", "parameters: {t: 0.005}", { base: true, models: 1, params: { t: 0.005 } }],
  ];
  for (const [method, params, c] of cases) {
    it(`${method}: engine output equals the method applied to the same tensors`, async () => {
      const models = fts.slice(0, c.models);
      const refs = models
        .map((_, i) => `  - model: ${p(`ft${i + 1}`)}\n${params === "" ? "" : `    ${params}\n`}`)
        .join("");
      const cfg = writeConfig(
        `interp-${method}`,
        `merge_method: ${method}\n${c.base ? `base_model: ${p("base")}\nparameters: {t: 0.005}\n` : ""}models:\n${refs}`,
      );
      const out = p(`out-${method}`);
      await merge(cfg, out, { jobs: 2 });
      const spec = getMethod(method);
      const per = params === "" || c.base ? {} : { weight: 0.5 };
      for (const name of [Q0, "lm_head.weight"]) {
        const expected = spec.merge({
          tensorName: name,
          models: models.map((m) => ({ data: toFloat32(m.tensors.get(name)!), shape: m.tensors.get(name)!.shape })),
          base: c.base ? { data: toFloat32(base.tensors.get(name)!), shape: base.tensors.get(name)!.shape } : undefined,
          params: c.params,
          modelParams: models.map(() => per),
        });
        assertClose(values(out, name), expected.data, 0);
      }
      assert.equal(readModel(out).tensors.size, base.tensors.size);
    });
  }

  it("warns about parameters the method does not have (mergekit silently ignores them)", async () => {
    const cfg = writeConfig(
      "typo",
      `merge_method: ties\nbase_model: ${p("base")}\nparameters: {desnity: 0.5, weight: 1}\nmodels:\n  - model: ${p("ft1")}\n`,
    );
    const warnings: string[] = [];
    await merge(cfg, p("out-typo"), { jobs: 1, onWarning: (w) => warnings.push(w) });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /^parameters\.desnity: merge_method ties has no parameter 'desnity'/);
  });
});

describe("merge: chunked streaming (elementwise methods, and multi-pass task arithmetic)", () => {
  for (const [method, yaml] of [
    [
      "linear",
      `merge_method: linear\nmodels:\n  - model: ${p("ft1")}\n    parameters: {weight: 0.3}\n  - model: ${p("ft2")}\n    parameters: {weight: 0.5}\n  - model: ${p("ft3")}\n    parameters: {weight: 0.2}\ndtype: bfloat16\n`,
    ],
    [
      "task_arithmetic",
      `merge_method: task_arithmetic\nbase_model: ${p("base")}\nparameters: {weight: 0.7, lambda: 0.9}\nmodels:\n  - model: ${p("ft1")}\n  - model: ${p("ft2")}\n`,
    ],
    [
      "ties (density 1: dense, elementwise)",
      `merge_method: ties\nbase_model: ${p("base")}\nparameters: {weight: 0.5}\nmodels:\n  - model: ${p("ft1")}\n  - model: ${p("ft2")}\n  - model: ${p("ft3")}\n`,
    ],
    ["passthrough", `merge_method: passthrough\nmodels:\n  - model: ${p("ft1")}\n    parameters: {scale: 0.5}\n`],
    [
      "ties (density 0.4: streamed in passes)",
      `merge_method: ties\nbase_model: ${p("base")}\nparameters: {weight: 0.5, density: 0.4, rescale: true}\nmodels:\n  - model: ${p("ft1")}\n  - model: ${p("ft2")}\n  - model: ${p("ft3")}\n`,
    ],
    [
      "dare_ties (streamed in passes)",
      `merge_method: dare_ties\nbase_model: ${p("base")}\nparameters: {weight: 0.5, density: 0.4}\nmodels:\n  - model: ${p("ft1")}\n  - model: ${p("ft2")}\n`,
    ],
    [
      "dare_linear (streamed in passes)",
      `merge_method: dare_linear\nbase_model: ${p("base")}\nparameters: {weight: 0.5, density: 0.6}\nmodels:\n  - model: ${p("ft1")}\n  - model: ${p("ft2")}\n`,
    ],
  ] as const) {
    it(`${method}: chunks of 100 elements give the same bytes as whole tensors`, async () => {
      const tag = method.replace(/\W+/g, "-");
      const cfg = writeConfig(`chunk-${tag}`, yaml);
      const whole = p(`out-whole-${tag}`);
      const chunked = p(`out-chunked-${tag}`);
      await merge(cfg, whole, { jobs: 1, chunkElements: 1e9 });
      await merge(cfg, chunked, { jobs: 2, chunkElements: 100 });
      const bytes = (d: string) => readFileSync(join(d, "model.safetensors"));
      assert.ok(bytes(whole).equals(bytes(chunked)));
    });
  }
});

describe("merge: failures during execution", () => {
  for (const jobs of [1, 2]) {
    it(`an error raised while merging (-j ${jobs}) removes the partial output`, async () => {
      // density 0.05 keeps int(0.05 * 16) = 0 entries of the 16-element norm weights: mergekit asserts, so do we.
      const cfg = writeConfig(
        `k0-${jobs}`,
        `merge_method: ties\nbase_model: ${p("base")}\nparameters: {density: 0.05, weight: 1}\nmodels:\n  - model: ${p("ft1")}\n  - model: ${p("ft2")}\n`,
      );
      const before = readdirSync(root).length;
      await assert.rejects(merge(cfg, p(`out-k0-${jobs}`), { jobs }), (e: unknown) => {
        assert.ok(e instanceof FusionError && e.code === "MERGE_INVALID", String(e));
        assert.match(e.message, /layernorm|norm\.weight/);
        assert.match(e.message, /0 entries/);
        return true;
      });
      assert.equal(existsSync(p(`out-k0-${jobs}`)), false);
      assert.equal(readdirSync(root).length, before, "no temporary directory left behind");
    });
  }
});

describe("merge: architectures", () => {
  it("models of different architectures need --allow-crimes", async () => {
    const other = p("mistral-like");
    const { cpSync } = await import("node:fs");
    cpSync(p("ft1"), other, { recursive: true });
    const cfgPath = join(other, "config.json");
    const cfg = JSON.parse(readFileSync(cfgPath, "utf8"));
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, architectures: ["MistralForCausalLM"], model_type: "mistral" }));
    const yaml = writeConfig(
      "crimes",
      `merge_method: linear\nmodels:\n  - model: ${p("ft2")}\n    parameters: {weight: 1}\n  - model: ${other}\n    parameters: {weight: 1}\n`,
    );
    await assert.rejects(merge(yaml, p("out-crimes"), { jobs: 1 }), (e: unknown) => {
      assert.ok(e instanceof FusionError && e.code === "MERGE_INVALID");
      assert.match(e.message, /different architectures.*--allow-crimes/);
      return true;
    });
    const s = await merge(yaml, p("out-crimes"), { jobs: 1, allowCrimes: true });
    assert.equal(s.tensors, base.tensors.size);
  });

  it("an unknown architecture is inferred from tensor names", async () => {
    const odd = p("odd-arch");
    const { cpSync } = await import("node:fs");
    cpSync(p("ft1"), odd, { recursive: true });
    const cfgPath = join(odd, "config.json");
    const cfg = JSON.parse(readFileSync(cfgPath, "utf8"));
    writeFileSync(
      cfgPath,
      JSON.stringify({ ...cfg, architectures: ["SomethingNewForCausalLM"], model_type: "something" }),
    );
    const yaml = writeConfig(
      "odd",
      `merge_method: passthrough\nslices:\n  - sources:\n      - model: ${odd}\n        layer_range: [0, 2]\n  - sources:\n      - model: ${odd}\n        layer_range: [1, 4]\n`,
    );
    const s = await merge(yaml, p("out-odd"), { jobs: 1 });
    assert.equal(s.numLayers, 5);
    const r = readModel(p("out-odd"));
    assert.equal(r.config?.num_hidden_layers, 5);
    assert.ok(r.tensors.has("model.layers.4.mlp.down_proj.weight"));
    assert.ok(r.tensors.has("model.embed_tokens.weight") && r.tensors.has("lm_head.weight"));
  });
});
