// Demo: write small seeded Llama-shaped checkpoints (a base and two fine-tunes, one of them sharded) into a temp
// folder and inspect them.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatInspect } from "../src/cli/inspect.js";
import { inspect } from "../src/io/inspect.js";
import { writeSyntheticLlama } from "../src/synth/llama.js";

const root = mkdtempSync(join(tmpdir(), "fusionkit-demo-"));
console.log(`fusionkit demo: writing seeded Llama-shaped checkpoints into ${root}\n`);
const models = [
  { name: "base", opts: {} },
  { name: "finetune-a", opts: { finetuneSeed: 1 } },
  { name: "finetune-b", opts: { finetuneSeed: 2, maxShardBytes: 200_000 } },
];
for (const m of models) {
  const { files } = writeSyntheticLlama(join(root, m.name), { baseSeed: 42, ...m.opts });
  console.log(`${m.name}: ${files.join(", ")}`);
}
for (const m of models) {
  const report = inspect(join(root, m.name));
  const text = formatInspect(report).split("\n");
  // The full tensor table is long; show the summary and the first rows.
  console.log(`\n${text.slice(0, text.indexOf("tensors:") + 6).join("\n")}\n  ... (${report.tensors.length} tensors)`);
}
console.log(`\nTry: npm run fusionkit -- inspect ${join(root, "finetune-b")} --json`);
