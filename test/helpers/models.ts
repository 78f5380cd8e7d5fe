import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeSyntheticLlama } from "../../src/synth/llama.js";
import type { DType } from "../../src/tensor/dtype.js";

export const TINY = { vocabSize: 48, hiddenSize: 16, intermediateSize: 24, numLayers: 4, numHeads: 2, numKvHeads: 1 };

/** A base and `n` fine-tunes of a tiny Llama in `root` (base/, ft1/, ft2/, ...), with tokenizer files in base. */
export function writeModelSet(root: string, options: { n?: number; dtype?: DType; numLayers?: number } = {}): string[] {
  const names = ["base"];
  const shape = { ...TINY, numLayers: options.numLayers ?? TINY.numLayers };
  writeSyntheticLlama(join(root, "base"), { shape, dtype: options.dtype ?? "F32", baseSeed: 5 });
  for (let i = 1; i <= (options.n ?? 3); i++) {
    writeSyntheticLlama(join(root, `ft${i}`), {
      shape,
      dtype: options.dtype ?? "F32",
      baseSeed: 5,
      finetuneSeed: i,
      deltaStd: 0.01,
    });
    names.push(`ft${i}`);
  }
  // Tokenizer and tag-along files, marked with the model they came from.
  for (const name of names) {
    const dir = join(root, name);
    writeFileSync(join(dir, "tokenizer_config.json"), `${JSON.stringify({ model_max_length: 2048, from: name })}\n`);
    writeFileSync(
      join(dir, "tokenizer.json"),
      `${JSON.stringify({ version: "1.0", model: { type: "BPE" }, from: name })}\n`,
    );
    writeFileSync(join(dir, "special_tokens_map.json"), "{}\n");
    writeFileSync(join(dir, "generation_config.json"), `${JSON.stringify({ do_sample: false, from: name })}\n`);
  }
  return names;
}
