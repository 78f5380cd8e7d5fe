/**
 * Multi-head self-attention (Vaswani et al. 2017, "Attention Is All You Need") from a fused qkv projection, as one
 * JavaScript op with a hand-written gradient. For small heads (the ViT's 17 tokens x 16 dims) the composed form cost
 * more in its 5-d transposes, unstack / stack and one tiny sgemm per (sample, head) than in arithmetic; this reads
 * q, k and v in place from the qkv rows and writes the heads straight into their concatenated output columns.
 */
import * as tf from "@tensorflow/tfjs";
import { FusionError } from "../../errors.js";
import { NO_TRANS, type Sgemm, TRANS } from "../blas.js";
import { outArray, peek, type SaveFn, softmaxGradRows, softmaxRows } from "./fast-ops.js";

type GradFn = Parameters<typeof tf.customGrad>[0];

export interface AttentionShape {
  /** Sequences. */
  n: number;
  /** Tokens per sequence. */
  tokens: number;
  heads: number;
  /** Dimensions per head. */
  headDim: number;
  /** Logit scale, usually 1 / sqrt(headDim). */
  scale: number;
}

/**
 * qkv [n·T, 3·D] (each row q | k | v, each of those heads x headDim) -> softmax(scale · q kᵀ) v per sequence and
 * head, as [n·T, D] with the heads concatenated (PyTorch's `(attn @ v).transpose(1, 2).reshape(B, N, C)`).
 */
export function selfAttention(qkv: tf.Tensor, s: AttentionShape, sgemm: Sgemm): tf.Tensor {
  const { n, tokens: T, heads, headDim: dh, scale } = s;
  const D = heads * dh;
  const row = 3 * D;
  if (qkv.size !== n * T * row)
    throw new FusionError(
      "SHAPE_MISMATCH",
      `attention: qkv has ${qkv.size} values, expected ${n} x ${T} tokens x ${row} (3 x ${heads} heads x ${dh})`,
      { tensor: "qkv" },
    );
  const run = tf.customGrad(((x: tf.Tensor, save: SaveFn) => {
    const qv = peek(x);
    const probs = outArray(n * heads * T * T);
    const out = outArray(n * T * D); // every element written by a beta = 0 product
    for (let b = 0; b < n; b++) {
      for (let h = 0; h < heads; h++) {
        const qo = b * T * row + h * dh;
        const po = (b * heads + h) * T * T;
        const p = probs.subarray(po, po + T * T);
        // Z = scale · Q Kᵀ, then softmax per row, then O = P V into this head's output columns.
        sgemm(NO_TRANS, TRANS, T, T, dh, scale, qv.subarray(qo), row, qv.subarray(qo + D), row, 0, p, T);
        softmaxRows(p, p, T, 1);
        sgemm(
          NO_TRANS,
          NO_TRANS,
          T,
          dh,
          T,
          1,
          p,
          T,
          qv.subarray(qo + 2 * D),
          row,
          0,
          out.subarray(b * T * D + h * dh),
          D,
        );
      }
    }
    save([x, tf.tensor(probs, [n * heads, T, T], "float32")]); // tfjs keeps both until the gradient has run
    return {
      value: tf.tensor(out, [n * T, D], "float32"),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const qv = peek(saved[0]!);
        const probs = peek(saved[1]!);
        const g = peek(dy);
        const dx = outArray(n * T * row); // every element written by a beta = 0 product
        const dz = new Float32Array(T * T);
        for (let b = 0; b < n; b++) {
          for (let h = 0; h < heads; h++) {
            const qo = b * T * row + h * dh;
            const go = g.subarray(b * T * D + h * dh);
            const po = (b * heads + h) * T * T;
            const p = probs.subarray(po, po + T * T);
            // dP = dO Vᵀ;  dV = Pᵀ dO;  dZ = scale · P ∘ (dP − rowsum(P ∘ dP));  dQ = dZ K;  dK = dZᵀ Q
            sgemm(NO_TRANS, TRANS, T, T, dh, 1, go, D, qv.subarray(qo + 2 * D), row, 0, dz, T);
            sgemm(TRANS, NO_TRANS, T, dh, T, 1, p, T, go, D, 0, dx.subarray(qo + 2 * D), row);
            softmaxGradRows(p, dz, dz, T, scale);
            sgemm(NO_TRANS, NO_TRANS, T, dh, T, 1, dz, T, qv.subarray(qo + D), row, 0, dx.subarray(qo), row);
            sgemm(TRANS, NO_TRANS, T, dh, T, 1, dz, T, qv.subarray(qo), row, 0, dx.subarray(qo + D), row);
          }
        }
        return tf.tensor(dx, x.shape, "float32");
      },
    };
  }) as unknown as GradFn);
  return run(qkv);
}
