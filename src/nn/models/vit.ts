/**
 * Small Vision Transformer backbone (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words"), timm-style names,
 * pre-norm blocks, class token, learned position embedding, tanh-approximated GELU.
 *
 * Parameters: `patch_embed.proj.weight` [D, C, p, p] / `.bias` (a stride-p conv, computed as one GEMM over flattened
 * patches), `cls_token` [1, 1, D], `pos_embed` [1, 1 + P, D], per block `blocks.i.norm1.*`, `blocks.i.attn.qkv.*`
 * (weight [3D, D]: q, k, v stacked), `blocks.i.attn.proj.*`, `blocks.i.norm2.*`, `blocks.i.mlp.fc1.*` ([H, D]),
 * `blocks.i.mlp.fc2.*` ([D, H]), and the final `norm.*` (LayerNorms, eps 1e-6: weight, bias).
 * Init: Linear weights N(0, 0.02²) truncated at ±2σ, biases 0, pos_embed N(0, 0.02²), cls_token N(0, 1e-6²),
 * patch embedding PyTorch's conv default, norms 1 / 0.
 * Captures ([N, tokens, width]): `patch_embed.proj.in` [N, P, C·p·p] (patches flattened in (c, kh, kw) order),
 * `blocks.i.attn.qkv.in` (norm1 output), `blocks.i.attn.proj.in` (heads concatenated), `blocks.i.mlp.fc1.in`
 * (norm2 output), `blocks.i.mlp.fc2.in` = `blocks.i.mlp.act` (after GELU), `blocks.i.act` (the residual stream
 * after block i). Output: the final-norm class token [N, D].
 * Permutations: `P_res` — the residual stream (patch embedding out, cls, pos, every norm, qkv and fc1 inputs, proj
 * and fc2 outputs, the final norm; the `features` group); `P_blocks.i.mlp` — each block's MLP hidden units.
 * Per-head symmetries (head order; dims within a head shared by q/k or v/proj) are left out: q, k and v share one
 * fused tensor, and those permutations act on sub-blocks of its axis, which a (param, axis) group cannot express.
 */
import * as tf from "@tensorflow/tfjs";
import { FusionError } from "../../errors.js";
import { blas } from "../blas.js";
import { selfAttention } from "./attention.js";
import {
  checkInput,
  convDefs,
  defineModel,
  get,
  type Init,
  layerNormDefs,
  type ParamDef,
  param,
  positiveInt,
  runForward,
  SpecBuilder,
  zerosInit,
} from "./common.js";
import { constLinear, f32, firstToken, scaledSoftmax, transposeValues } from "./fast-ops.js";
import { gelu, layerNorm, linear, prependToken, transpose } from "./ops.js";
import type { Model } from "./types.js";

export interface ViTConfig {
  patchSize: number;
  dim: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  inputShape: number[];
}

export const VIT_DEFAULTS: ViTConfig = {
  patchSize: 7,
  dim: 64,
  depth: 4,
  heads: 4,
  mlpRatio: 2,
  inputShape: [28, 28, 1],
};

const TRUNC: Init = { kind: "normal", std: 0.02, truncate: true };

function vitLinear(prefix: string, inF: number, outF: number): ParamDef[] {
  return [param(`${prefix}.weight`, [outF, inF], TRUNC), param(`${prefix}.bias`, [outF], zerosInit)];
}

export function vit(config: Partial<ViTConfig> = {}): Model<ViTConfig> {
  const cfg: ViTConfig = {
    ...VIT_DEFAULTS,
    ...config,
    inputShape: [...(config.inputShape ?? VIT_DEFAULTS.inputShape)],
  };
  for (const k of ["patchSize", "dim", "depth", "heads"] as const) positiveInt(cfg[k], k);
  const [H, W, C] = cfg.inputShape as [number, number, number];
  const p = cfg.patchSize;
  if (H % p !== 0 || W % p !== 0)
    throw new FusionError("INVALID_ARGUMENT", `patch size ${p} does not divide ${H}x${W}`, { key: "patchSize" });
  if (cfg.dim % cfg.heads !== 0)
    throw new FusionError("INVALID_ARGUMENT", `dim ${cfg.dim} is not a multiple of heads ${cfg.heads}`, {
      key: "heads",
    });
  const hidden = Math.round(cfg.dim * cfg.mlpRatio);
  positiveInt(hidden, "mlpRatio");
  const D = cfg.dim;
  const gh = H / p;
  const gw = W / p;
  const P = gh * gw;
  const T = P + 1;
  const heads = cfg.heads;
  const dh = D / heads;

  const defs: ParamDef[] = [
    ...convDefs("patch_embed.proj", C, D, p),
    param("cls_token", [1, 1, D], { kind: "normal", std: 1e-6 }),
    param("pos_embed", [1, T, D], TRUNC),
  ];
  const spec = new SpecBuilder();
  spec.group("P_res", D, `blocks.${cfg.depth - 1}.act`).out("P_res", "patch_embed.proj");
  spec.axis("P_res", "cls_token", 2).axis("P_res", "pos_embed", 2);
  for (let i = 0; i < cfg.depth; i++) {
    const b = `blocks.${i}`;
    defs.push(...layerNormDefs(`${b}.norm1`, D), ...vitLinear(`${b}.attn.qkv`, D, 3 * D));
    defs.push(...vitLinear(`${b}.attn.proj`, D, D), ...layerNormDefs(`${b}.norm2`, D));
    defs.push(...vitLinear(`${b}.mlp.fc1`, D, hidden), ...vitLinear(`${b}.mlp.fc2`, hidden, D));
    spec.out("P_res", `${b}.norm1`).axis("P_res", `${b}.attn.qkv.weight`, 1).out("P_res", `${b}.attn.proj`);
    spec.out("P_res", `${b}.norm2`).axis("P_res", `${b}.mlp.fc1.weight`, 1).out("P_res", `${b}.mlp.fc2`);
    const m = `P_${b}.mlp`;
    spec.group(m, hidden, `${b}.mlp.act`).out(m, `${b}.mlp.fc1`).axis(m, `${b}.mlp.fc2.weight`, 1);
  }
  defs.push(...layerNormDefs("norm", D));
  spec.out("P_res", "norm");
  spec.spec.features = "P_res";

  const scale = 1 / Math.sqrt(dh);
  const sgemm = blas()?.sgemm;
  /** Attention over qkv [N·T, 3D]: strided sgemm per (sample, head) with native BLAS, else composed tfjs ops. */
  const attend = (qkv: tf.Tensor, n: number): tf.Tensor => {
    if (sgemm !== undefined) return selfAttention(qkv, { n, tokens: T, heads, headDim: dh, scale }, sgemm);
    // [N, T, 3, heads, dh] -> [3, N, heads, T, dh]
    const parts = tf.unstack(transpose(tf.reshape(qkv, [n, T, 3, heads, dh]), [2, 0, 3, 1, 4]));
    const [q, k, v] = parts.map((t) => tf.reshape(t, [n * heads, T, dh])) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
    const att = scaledSoftmax(tf.matMul(q, k, false, true), scale);
    return tf.reshape(transpose(tf.reshape(tf.matMul(att, v), [n, heads, T, dh]), [0, 2, 1, 3]), [n * T, D]);
  };

  return defineModel({
    arch: "vit",
    config: cfg,
    defs,
    inputShape: cfg.inputShape,
    featureDim: D,
    permutationSpec: spec.spec,
    forward: (params, x, options) => {
      checkInput(x, cfg.inputShape, "vit");
      return runForward(options, (cap) => {
        const n = x.shape[0]!;
        // [N, gh, p, gw, p, C] -> [N, gh, gw, C, p, p]: each patch flattened in the conv weight's (c, kh, kw) order.
        const pv = transposeValues(f32(x), [n, gh, p, gw, p, C], [0, 1, 3, 5, 2, 4]);
        if (cap.enabled) cap.add("patch_embed.proj.in", tf.tensor(pv.slice(), [n, P, C * p * p]));
        const wPatch = tf.reshape(get(params, "patch_embed.proj.weight"), [D, C * p * p]);
        const emb = tf.reshape(constLinear(pv, n * P, C * p * p, wPatch, get(params, "patch_embed.proj.bias")), [
          n,
          P,
          D,
        ]);
        let h = tf.reshape(tf.add(prependToken(get(params, "cls_token"), emb), get(params, "pos_embed")), [n * T, D]); // [N·T, D]
        for (let i = 0; i < cfg.depth; i++) {
          const b = `blocks.${i}`;
          const g = (s: string) => get(params, `${b}.${s}`);
          const a = layerNorm(h, g("norm1.weight"), g("norm1.bias"), 1e-6);
          cap.add(`${b}.attn.qkv.in`, a, [n, T, D]);
          const qkv = linear(a, g("attn.qkv.weight"), g("attn.qkv.bias")); // [N·T, 3D]
          const o = attend(qkv, n); // [N·T, D], heads concatenated
          cap.add(`${b}.attn.proj.in`, o, [n, T, D]);
          h = tf.add(h, linear(o, g("attn.proj.weight"), g("attn.proj.bias")));
          const m = layerNorm(h, g("norm2.weight"), g("norm2.bias"), 1e-6);
          cap.add(`${b}.mlp.fc1.in`, m, [n, T, D]);
          const act = gelu(linear(m, g("mlp.fc1.weight"), g("mlp.fc1.bias")));
          cap.add(`${b}.mlp.act`, act, [n, T, hidden]);
          cap.add(`${b}.mlp.fc2.in`, act, [n, T, hidden]);
          h = tf.add(h, linear(act, g("mlp.fc2.weight"), g("mlp.fc2.bias")));
          cap.add(`${b}.act`, h, [n, T, D]);
        }
        // LayerNorm is per token, so normalising only the class token gives the same features.
        const clsOut = firstToken(tf.reshape(h, [n, T, D]));
        return { output: layerNorm(clsOut, get(params, "norm.weight"), get(params, "norm.bias"), 1e-6) };
      });
    },
  });
}
