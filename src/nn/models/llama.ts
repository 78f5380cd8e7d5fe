/**
 * Tiny Llama decoder (Touvron et al. 2023, "LLaMA: Open and Efficient Foundation Language Models"): RMSNorm
 * pre-norm, rotary position embedding (Su et al. 2021, the rotate-half form), SwiGLU MLP, causal attention with
 * optional grouped key/value heads, Hugging Face `LlamaForCausalLM` names and layouts.
 *
 * Parameters: `model.embed_tokens.weight` [V, D]; per layer `model.layers.i.input_layernorm.weight` [D],
 * `model.layers.i.self_attn.{q,k,v,o}_proj.weight` ([heads·dh, D], [kv·dh, D], [kv·dh, D], [D, heads·dh]),
 * `model.layers.i.post_attention_layernorm.weight` [D], `model.layers.i.mlp.{gate,up}_proj.weight` [I, D],
 * `model.layers.i.mlp.down_proj.weight` [D, I]; `model.norm.weight` [D]; `lm_head.weight` [V, D] (absent when
 * `tieEmbeddings`). No biases. Init as Hugging Face: N(0, 0.02²) for linear and embedding weights, norms 1.
 * Input [N, T] int32 token ids (T <= maxSeq); output logits [N, T, V].
 * Captures ([N, T, width]): `model.layers.i.self_attn.{q,k,v}_proj.in` (input_layernorm output),
 * `model.layers.i.self_attn.o_proj.in` (heads concatenated), `model.layers.i.mlp.{gate,up}_proj.in`
 * (post_attention_layernorm output), `model.layers.i.mlp.act` = `model.layers.i.mlp.down_proj.in`
 * (silu(gate)·up), `model.layers.i.act` (residual stream after layer i), `lm_head.in` (final norm output).
 * Permutations: `P_res` — the residual stream (embedding columns, every RMSNorm weight, q/k/v/gate/up inputs, o/down
 * outputs, lm_head inputs; RMSNorm's mean of squares is permutation invariant); `P_layers.i.mlp` — each layer's
 * MLP hidden units. Attention-internal dims are excluded: RoPE rotates fixed pairs (j, j + dh/2) of q/k dims, and
 * any v/o permutation must keep dims inside their head, so neither is free for ANY permutation.
 */
import * as tf from "@tensorflow/tfjs";
import { FusionError } from "../../errors.js";
import { defineModel, get, onesInit, type ParamDef, param, positiveInt, runForward, SpecBuilder } from "./common.js";
import { embedding, scaledSoftmax } from "./fast-ops.js";
import { linear, rmsNorm, silu, transpose } from "./ops.js";
import type { Model } from "./types.js";

export interface LlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKeyValueHeads: number;
  maxSeq: number;
  ropeTheta: number;
  rmsNormEps: number;
  tieEmbeddings: boolean;
}

export const LLAMA_DEFAULTS: LlamaConfig = {
  vocabSize: 256,
  hiddenSize: 64,
  intermediateSize: 172,
  numLayers: 2,
  numHeads: 4,
  numKeyValueHeads: 4,
  maxSeq: 64,
  ropeTheta: 10000,
  rmsNormEps: 1e-6,
  tieEmbeddings: false,
};

const NORMAL = { kind: "normal", std: 0.02 } as const;

/** cos / sin tables [rows, dh] for positions `row % T` (rows = rep·T when query heads are grouped). */
function ropeTables(T: number, rep: number, dh: number, theta: number): [Float32Array, Float32Array] {
  const cos = new Float32Array(rep * T * dh);
  const sin = new Float32Array(rep * T * dh);
  const half = dh / 2;
  for (let r = 0; r < rep * T; r++) {
    const pos = r % T;
    for (let j = 0; j < dh; j++) {
      const angle = pos * theta ** (-(2 * (j % half)) / dh);
      cos[r * dh + j] = Math.cos(angle);
      sin[r * dh + j] = Math.sin(angle);
    }
  }
  return [cos, sin];
}

/** R with x·R = rotate_half(x) = concat(-x[dh/2:], x[:dh/2]). */
function rotateHalfMatrix(dh: number): Float32Array {
  const half = dh / 2;
  const r = new Float32Array(dh * dh);
  for (let j = 0; j < half; j++) {
    r[(j + half) * dh + j] = -1; // out[j] = -x[j + half]
    r[j * dh + j + half] = 1; // out[j + half] = x[j]
  }
  return r;
}

export function llama(config: Partial<LlamaConfig> = {}): Model<LlamaConfig> {
  const cfg: LlamaConfig = {
    ...LLAMA_DEFAULTS,
    numKeyValueHeads: config.numHeads ?? LLAMA_DEFAULTS.numHeads,
    ...config,
  };
  for (const k of [
    "vocabSize",
    "hiddenSize",
    "intermediateSize",
    "numLayers",
    "numHeads",
    "numKeyValueHeads",
    "maxSeq",
  ] as const)
    positiveInt(cfg[k], k);
  const D = cfg.hiddenSize;
  const I = cfg.intermediateSize;
  const heads = cfg.numHeads;
  const kv = cfg.numKeyValueHeads;
  if (D % heads !== 0 || (D / heads) % 2 !== 0)
    throw new FusionError("INVALID_ARGUMENT", `hiddenSize ${D} / numHeads ${heads} must be an even integer`, {
      key: "numHeads",
    });
  if (heads % kv !== 0)
    throw new FusionError("INVALID_ARGUMENT", `numHeads ${heads} is not a multiple of numKeyValueHeads ${kv}`, {
      key: "numKeyValueHeads",
    });
  const dh = D / heads;
  const rep = heads / kv;
  const V = cfg.vocabSize;

  const defs: ParamDef[] = [param("model.embed_tokens.weight", [V, D], NORMAL)];
  const spec = new SpecBuilder();
  spec.group("P_res", D, `model.layers.${cfg.numLayers - 1}.act`).axis("P_res", "model.embed_tokens.weight", 1);
  for (let i = 0; i < cfg.numLayers; i++) {
    const l = `model.layers.${i}`;
    defs.push(
      param(`${l}.input_layernorm.weight`, [D], onesInit),
      param(`${l}.self_attn.q_proj.weight`, [heads * dh, D], NORMAL),
      param(`${l}.self_attn.k_proj.weight`, [kv * dh, D], NORMAL),
      param(`${l}.self_attn.v_proj.weight`, [kv * dh, D], NORMAL),
      param(`${l}.self_attn.o_proj.weight`, [D, heads * dh], NORMAL),
      param(`${l}.post_attention_layernorm.weight`, [D], onesInit),
      param(`${l}.mlp.gate_proj.weight`, [I, D], NORMAL),
      param(`${l}.mlp.up_proj.weight`, [I, D], NORMAL),
      param(`${l}.mlp.down_proj.weight`, [D, I], NORMAL),
    );
    spec.axis("P_res", `${l}.input_layernorm.weight`, 0);
    for (const s of ["q", "k", "v"]) spec.axis("P_res", `${l}.self_attn.${s}_proj.weight`, 1);
    spec.axis("P_res", `${l}.self_attn.o_proj.weight`, 0).axis("P_res", `${l}.post_attention_layernorm.weight`, 0);
    spec.axis("P_res", `${l}.mlp.gate_proj.weight`, 1).axis("P_res", `${l}.mlp.up_proj.weight`, 1);
    spec.axis("P_res", `${l}.mlp.down_proj.weight`, 0);
    const m = `P_${l}.mlp`;
    spec.group(m, I, `${l}.mlp.act`).axis(m, `${l}.mlp.gate_proj.weight`, 0).axis(m, `${l}.mlp.up_proj.weight`, 0);
    spec.axis(m, `${l}.mlp.down_proj.weight`, 1);
  }
  defs.push(param("model.norm.weight", [D], onesInit));
  spec.axis("P_res", "model.norm.weight", 0);
  if (!cfg.tieEmbeddings) {
    defs.push(param("lm_head.weight", [V, D], NORMAL));
    spec.axis("P_res", "lm_head.weight", 1);
  }

  return defineModel({
    arch: "llama",
    config: cfg,
    defs,
    inputShape: [cfg.maxSeq],
    featureDim: D,
    permutationSpec: spec.spec,
    forward: (params, x, options) => {
      if (x.rank !== 2 || x.dtype !== "int32" || x.shape[1]! > cfg.maxSeq || x.shape[1]! < 1)
        throw new FusionError(
          "SHAPE_MISMATCH",
          `llama expects int32 token ids [N, T] with 1 <= T <= ${cfg.maxSeq}, got ${x.dtype} [${x.shape.join(", ")}]`,
        );
      return runForward(options, (cap) => {
        const [n, T] = x.shape as [number, number];
        const [cosQ, sinQ] = ropeTables(T, rep, dh, cfg.ropeTheta);
        const cosQt = tf.tensor(cosQ, [rep * T, dh]);
        const sinQt = tf.tensor(sinQ, [rep * T, dh]);
        const cosK = tf.slice(cosQt, [0, 0], [T, dh]);
        const sinK = tf.slice(sinQt, [0, 0], [T, dh]);
        const rot = tf.tensor(rotateHalfMatrix(dh), [dh, dh]);
        const rope = (t: tf.Tensor, c: tf.Tensor, s: tf.Tensor) => tf.add(tf.mul(t, c), tf.mul(tf.matMul(t, rot), s));
        const mask = new Float32Array(rep * T * T);
        for (let r = 0; r < rep * T; r++) for (let c = (r % T) + 1; c < T; c++) mask[r * T + c] = -1e9;
        const maskT = tf.tensor(mask, [rep * T, T]);
        const scale = 1 / Math.sqrt(dh);
        const ids = x.dataSync() as Int32Array;
        const embed = get(params, "model.embed_tokens.weight");
        for (const id of ids)
          if (id < 0 || id >= V) throw new FusionError("INVALID_ARGUMENT", `token id ${id} outside [0, ${V})`);
        let h = embedding(embed, ids); // [N·T, D]
        const shape3 = (w: number) => [n, T, w];
        // [N·T, H·dh] -> [N·kv, rep·T, dh] (query heads of one kv head side by side) or [N·kv, T, dh].
        const toHeads = (t: tf.Tensor, hs: number) =>
          tf.reshape(transpose(tf.reshape(t, [n, T, hs, dh]), [0, 2, 1, 3]), [n * kv, (hs / kv) * T, dh]);
        for (let i = 0; i < cfg.numLayers; i++) {
          const l = `model.layers.${i}`;
          const g = (s: string) => get(params, `${l}.${s}`);
          const a = rmsNorm(h, g("input_layernorm.weight"), cfg.rmsNormEps);
          for (const s of ["q", "k", "v"]) cap.add(`${l}.self_attn.${s}_proj.in`, a, shape3(D));
          const q = rope(toHeads(linear(a, g("self_attn.q_proj.weight")), heads), cosQt, sinQt);
          const k = rope(toHeads(linear(a, g("self_attn.k_proj.weight")), kv), cosK, sinK);
          const v = toHeads(linear(a, g("self_attn.v_proj.weight")), kv);
          const scores = tf.add(tf.matMul(q, k, false, true), maskT); // [N·kv, rep·T, T]
          const o = tf.matMul(scaledSoftmax(scores, scale), v); // [N·kv, rep·T, dh] = [N, heads, T, dh]
          const merged = tf.reshape(transpose(tf.reshape(o, [n, heads, T, dh]), [0, 2, 1, 3]), [n * T, heads * dh]);
          cap.add(`${l}.self_attn.o_proj.in`, merged, shape3(heads * dh));
          h = tf.add(h, linear(merged, g("self_attn.o_proj.weight")));
          const m = rmsNorm(h, g("post_attention_layernorm.weight"), cfg.rmsNormEps);
          cap.add(`${l}.mlp.gate_proj.in`, m, shape3(D));
          cap.add(`${l}.mlp.up_proj.in`, m, shape3(D));
          const act = tf.mul(silu(linear(m, g("mlp.gate_proj.weight"))), linear(m, g("mlp.up_proj.weight")));
          cap.add(`${l}.mlp.act`, act, shape3(I));
          cap.add(`${l}.mlp.down_proj.in`, act, shape3(I));
          h = tf.add(h, linear(act, g("mlp.down_proj.weight")));
          cap.add(`${l}.act`, h, shape3(D));
        }
        const f = rmsNorm(h, get(params, "model.norm.weight"), cfg.rmsNormEps);
        cap.add("lm_head.in", f, shape3(D));
        const head = cfg.tieEmbeddings ? embed : get(params, "lm_head.weight");
        return { output: tf.reshape(linear(f, head), [n, T, V]) };
      });
    },
  });
}
