// npm run demo: write a small seeded Llama-shaped base model and three "fine-tunes", merge them with five
// mergekit-style configs (linear, ties, dare_ties, slerp, a passthrough frankenmerge), and summarise the results.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { merge } from "../src/engine/merge.js";
import { inspect } from "../src/io/inspect.js";
import { ModelDir } from "../src/io/model-dir.js";
import { formatBytes, formatCount, formatTable } from "../src/report/format.js";
import { writeSyntheticLlama } from "../src/synth/llama.js";
import { toFloat32 } from "../src/tensor/convert.js";

const root = mkdtempSync(join(tmpdir(), "fusionkit-demo-"));
const shape = { vocabSize: 512, hiddenSize: 128, intermediateSize: 344, numLayers: 6, numHeads: 4, numKvHeads: 2 };
console.log(`fusionkit demo in ${root}\n`);

for (const [i, name] of ["base", "math", "code", "chat"].entries()) {
  writeSyntheticLlama(join(root, name), { shape, dtype: "BF16", baseSeed: 42, finetuneSeed: i === 0 ? undefined : i });
  writeFileSync(join(root, name, "tokenizer_config.json"), `${JSON.stringify({ model_max_length: 2048 })}\n`);
  writeFileSync(join(root, name, "tokenizer.json"), `${JSON.stringify({ version: "1.0", model: { type: "BPE" } })}\n`);
}
const r = inspect(join(root, "base"));
console.log(
  `wrote base + 3 fine-tunes: ${r.tensors.length} tensors, ${formatCount(r.params)} parameters, ${formatBytes(r.bytes)} each (bf16)\n`,
);

const configs: Record<string, string> = {
  linear: `merge_method: linear
models:
  - model: math
    parameters: {weight: 0.5}
  - model: code
    parameters: {weight: 0.3}
  - model: chat
    parameters: {weight: 0.2}
dtype: bfloat16
`,
  ties: `merge_method: ties
base_model: base
parameters: {normalize: true}
models:
  - model: math
    parameters: {density: 0.5, weight: 0.5}
  - model: code
    parameters: {density: 0.5, weight: 0.3}
  - model: chat
    parameters: {density: 0.5, weight: 0.2}
dtype: bfloat16
`,
  dare_ties: `merge_method: dare_ties
base_model: base
parameters: {density: 0.6, weight: 0.4}
models: [{model: math}, {model: code}, {model: chat}]
dtype: bfloat16
`,
  slerp: `merge_method: slerp
base_model: math
models: [{model: math}, {model: code}]
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 0.3, 0.7, 1]
    - filter: mlp
      value: [1, 0.5, 0.7, 0.3, 0]
    - value: 0.5
dtype: bfloat16
`,
  frankenmerge: `merge_method: passthrough
slices:
  - sources: [{model: math, layer_range: [0, 4]}]
  - sources: [{model: code, layer_range: [2, 6]}]
dtype: bfloat16
`,
};

const rows: string[][] = [];
process.chdir(root);
for (const [name, yaml] of Object.entries(configs)) {
  writeFileSync(join(root, `${name}.yml`), yaml);
  const s = await merge(join(root, `${name}.yml`), join(root, `merged-${name}`), { randomSeed: 1 });
  // How far the merge moved from the base: relative L2 distance over one attention projection.
  const probe = "model.layers.0.self_attn.q_proj.weight";
  const open = (d: string) => ModelDir.open(join(root, d));
  const [m, b] = [open(`merged-${name}`), open("base")];
  const x = toFloat32(m.stateDict.read(probe));
  const y = toFloat32(b.stateDict.read(probe));
  m.close();
  b.close();
  let num = 0;
  let den = 0;
  for (let i = 0; i < x.length; i++) {
    num += (x[i]! - y[i]!) ** 2;
    den += y[i]! ** 2;
  }
  rows.push([
    name,
    s.method,
    String(s.numLayers),
    String(s.tensors),
    `${s.seconds.toFixed(2)} s`,
    (Math.sqrt(num / den) * 100).toFixed(3),
  ]);
}
console.log(
  formatTable(
    ["config", "method", "layers", "tensors", "time", "% from base (layer 0 q_proj)"],
    rows,
    new Set([2, 3, 4, 5]),
  ),
);
console.log(
  `\nconfigs and merged models are in ${root}; try:\n  npm run fusionkit -- inspect ${join(root, "merged-frankenmerge")}\n  npm run fusionkit -- merge ${join(root, "ties.yml")} --dry-run`,
);
