import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../io/atomic.js";
import type { TensorSpec } from "../io/safetensors-write.js";
import { ShardedWriter } from "../io/sharded-write.js";
import { encodeFromF32 } from "../tensor/convert.js";
import { allocStorage, type DType } from "../tensor/dtype.js";
import { fillNormal, hashSeed } from "../tensor/random.js";
import { numel } from "../tensor/tensor.js";

/** Shape of a small Llama-architecture checkpoint (Hugging Face `LlamaForCausalLM` names and config keys). */
export interface LlamaShape {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
}

export const TINY_LLAMA: LlamaShape = {
  vocabSize: 256,
  hiddenSize: 64,
  intermediateSize: 172,
  numLayers: 4,
  numHeads: 4,
  numKvHeads: 2,
};

export interface SyntheticOptions {
  shape?: Partial<LlamaShape>;
  dtype?: DType;
  /** Seed of the shared "pretrained" weights. */
  baseSeed?: number;
  /** When set, adds a "fine-tune" delta drawn from this seed, with standard deviation `deltaStd`. */
  finetuneSeed?: number;
  deltaStd?: number;
  maxShardBytes?: number;
  /** Progress callback, once per tensor written. */
  onTensor?: (name: string, bytes: number) => void;
}

/** The tensors of a Llama checkpoint in Hugging Face order and naming. */
export function llamaTensorSpecs(s: LlamaShape, dtype: DType): TensorSpec[] {
  const headDim = s.hiddenSize / s.numHeads;
  const kv = s.numKvHeads * headDim;
  const specs: TensorSpec[] = [{ name: "model.embed_tokens.weight", dtype, shape: [s.vocabSize, s.hiddenSize] }];
  for (let l = 0; l < s.numLayers; l++) {
    const p = `model.layers.${l}`;
    specs.push(
      { name: `${p}.input_layernorm.weight`, dtype, shape: [s.hiddenSize] },
      { name: `${p}.self_attn.q_proj.weight`, dtype, shape: [s.hiddenSize, s.hiddenSize] },
      { name: `${p}.self_attn.k_proj.weight`, dtype, shape: [kv, s.hiddenSize] },
      { name: `${p}.self_attn.v_proj.weight`, dtype, shape: [kv, s.hiddenSize] },
      { name: `${p}.self_attn.o_proj.weight`, dtype, shape: [s.hiddenSize, s.hiddenSize] },
      { name: `${p}.post_attention_layernorm.weight`, dtype, shape: [s.hiddenSize] },
      { name: `${p}.mlp.gate_proj.weight`, dtype, shape: [s.intermediateSize, s.hiddenSize] },
      { name: `${p}.mlp.up_proj.weight`, dtype, shape: [s.intermediateSize, s.hiddenSize] },
      { name: `${p}.mlp.down_proj.weight`, dtype, shape: [s.hiddenSize, s.intermediateSize] },
    );
  }
  specs.push(
    { name: "model.norm.weight", dtype, shape: [s.hiddenSize] },
    { name: "lm_head.weight", dtype, shape: [s.vocabSize, s.hiddenSize] },
  );
  return specs;
}

export function llamaConfig(s: LlamaShape, dtype: DType): Record<string, unknown> {
  const torchDtype: Record<string, string> = { F32: "float32", F16: "float16", BF16: "bfloat16" };
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: s.vocabSize,
    hidden_size: s.hiddenSize,
    intermediate_size: s.intermediateSize,
    num_hidden_layers: s.numLayers,
    num_attention_heads: s.numHeads,
    num_key_value_heads: s.numKvHeads,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    hidden_act: "silu",
    tie_word_embeddings: false,
    torch_dtype: torchDtype[dtype] ?? "float32",
  };
}

/**
 * Write a seeded Llama-shaped checkpoint into `dir` (created if needed): safetensors (sharded when larger than
 * `maxShardBytes`) and config.json. Values depend only on the seeds and tensor names; one tensor is in memory
 * at a time. Norm weights are 1 + noise, as trained RMSNorm gains are.
 */
export function writeSyntheticLlama(
  dir: string,
  options: SyntheticOptions = {},
): { specs: TensorSpec[]; files: string[] } {
  const shape = { ...TINY_LLAMA, ...options.shape };
  const dtype = options.dtype ?? "BF16";
  const baseSeed = options.baseSeed ?? 0;
  const specs = llamaTensorSpecs(shape, dtype);
  mkdirSync(dir, { recursive: true });
  const writer = ShardedWriter.create(dir, specs, { maxShardBytes: options.maxShardBytes ?? 5e9 });
  try {
    let scratch = new Float32Array(0);
    for (const spec of specs) {
      const n = numel(spec.shape);
      if (scratch.length < n) scratch = new Float32Array(n);
      const values = scratch.subarray(0, n);
      const isNorm = spec.shape.length === 1;
      fillNormal(values, hashSeed(baseSeed, spec.name), isNorm ? 0.1 : 0.02);
      if (isNorm) for (let i = 0; i < n; i++) values[i] = values[i]! + 1;
      if (options.finetuneSeed !== undefined) {
        fillNormal(values, hashSeed(options.finetuneSeed, spec.name), options.deltaStd ?? 0.002, true);
      }
      const out = encodeFromF32(values, dtype, allocStorage(dtype, n));
      writer.write(spec.name, out);
      options.onTensor?.(spec.name, out.byteLength);
    }
  } catch (e) {
    writer.abort();
    throw e;
  }
  const files = writer.finish();
  writeFileAtomic(join(dir, "config.json"), `${JSON.stringify(llamaConfig(shape, dtype), null, 2)}\n`);
  return { specs, files: [...files, "config.json"] };
}
