/**
 * Layer functions over PyTorch-layout parameters: linear (x Wᵀ + b, the transpose is a GEMM flag, never a copy),
 * conv2d (one [O,I,kh,kw] -> HWIO transpose per call), BatchNorm (batch statistics + PyTorch running-stat update),
 * RMSNorm, SiLU; LayerNorm, GELU (tanh approximation) and transposes come from fast-ops.ts (swap `gelu` there when
 * src/nn/layers.ts grows a faster one).
 */
import * as tf from "@tensorflow/tfjs";
import { conv2d as fastConv2d, recording } from "../layers.js";
import { batchNormTrain, transpose } from "./fast-ops.js";

export { gelu, layerNorm, prependToken, spatialMean, transpose } from "./fast-ops.js";

/** x [M, in] · W[out, in]ᵀ + b, then ReLU when asked (fused into the GEMM when no tape is recording). */
export function linear(x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor, activation: "linear" | "relu" = "linear"): tf.Tensor {
  if (activation === "linear" || !recording())
    return tf.fused.matMul({ a: x, b: w, transposeB: true, bias: b, activation });
  return tf.relu(tf.fused.matMul({ a: x, b: w, transposeB: true, bias: b }));
}

export interface ConvOptions {
  stride?: number;
  pad?: "same" | "valid" | number;
  relu?: boolean;
  /** false for a layer reading input data: its input gradient is skipped. */
  inputGradient?: boolean;
}

/** NHWC conv with a PyTorch [O, I, kh, kw] weight. */
export function conv(x: tf.Tensor4D, w: tf.Tensor, b: tf.Tensor | undefined, o: ConvOptions = {}): tf.Tensor4D {
  const filter = transpose(w, [2, 3, 1, 0]) as tf.Tensor4D;
  return fastConv2d(x, filter, b, {
    strides: o.stride ?? 1,
    pad: o.pad ?? "same",
    activation: o.relu === true ? "relu" : "linear",
    inputGradient: o.inputGradient,
  });
}

export const BN_MOMENTUM = 0.1;
export const BN_EPS = 1e-5;

/**
 * BatchNorm over the last (channel) axis. Training: batch statistics (biased variance to normalise), and the new
 * running statistics `mean = (1-m)·mean + m·batch_mean`, `var = (1-m)·var + m·batch_var·n/(n-1)` as PyTorch does.
 * Eval: the running statistics.
 */
export function batchNorm(
  x: tf.Tensor,
  weight: tf.Tensor,
  bias: tf.Tensor,
  runningMean: tf.Tensor,
  runningVar: tf.Tensor,
  training: boolean,
): { y: tf.Tensor; mean?: tf.Tensor; var?: tf.Tensor } {
  if (!training)
    return { y: tf.batchNorm(x, runningMean as tf.Tensor1D, runningVar as tf.Tensor1D, bias, weight, BN_EPS) };
  const r = batchNormTrain(x, weight, bias, BN_EPS);
  const n = x.size / x.shape[x.rank - 1]!;
  const m = BN_MOMENTUM;
  const unbiased = r.variance.map((v) => (v * n) / Math.max(n - 1, 1));
  const newMean = tf.add(tf.mul(runningMean, 1 - m), tf.mul(tf.tensor(r.mean, runningMean.shape), m));
  const newVar = tf.add(tf.mul(runningVar, 1 - m), tf.mul(tf.tensor(unbiased, runningVar.shape), m));
  return { y: r.y, mean: newMean, var: newVar };
}

/** Llama's RMSNorm: x / sqrt(mean(x²) + eps) · weight, over the last axis. */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  const ms = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), weight);
}

/** SiLU (x·sigmoid(x)). */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}
