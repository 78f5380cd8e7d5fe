/**
 * GELU in its exact form, x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) (PyTorch's default), and its gradient
 * Phi(x) + x phi(x), as two fusionkit kernels: one pass each instead of the ~6 elementwise kernels the composed form
 * costs. tfjs 4.22 has no Gelu op; layers.ts `gelu()` wires these up with tf.customGrad (composed ops elsewhere).
 * erf uses Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7), the approximation tfjs's own Erf kernel uses, so
 * both paths agree to float32 rounding.
 */
import type * as tf from "@tensorflow/tfjs";
import { asFusion, FUSION_BACKEND } from "../backend.js";

export const GELU_KERNEL = "FusionkitGelu";
export const GELU_GRAD_KERNEL = "FusionkitGeluGrad";

const P = 0.3275911;
const A1 = 0.254829592;
const A2 = -0.284496736;
const A3 = 1.421413741;
const A4 = -1.453152027;
const A5 = 1.061405429;
/** 1 / sqrt(2) */
const S = Math.SQRT1_2;
/** 1 / sqrt(2 pi) */
const INV_SQRT_2PI = 0.3989422804014327;

/** out[i] = x Phi(x) for every element. */
export function geluForward(x: Float32Array, out: Float32Array): void {
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    const z = v * S;
    const a = Math.abs(z);
    const t = 1 / (1 + P * a);
    // erfc(|z|) by the A&S polynomial; erf(z) = sign(z) (1 - erfc(|z|))
    const e = t * (A1 + t * (A2 + t * (A3 + t * (A4 + t * A5)))) * Math.exp(-a * a);
    const erf = (Number(z >= 0) * 2 - 1) * (1 - e); // branch-free: the sign is random
    out[i] = 0.5 * v * (1 + erf);
  }
}

/** out[i] = dy (Phi(x) + x phi(x)) for every element. */
export function geluBackward(dy: Float32Array, x: Float32Array, out: Float32Array): void {
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    const z = v * S;
    const a = Math.abs(z);
    const t = 1 / (1 + P * a);
    const g = Math.exp(-a * a);
    const e = t * (A1 + t * (A2 + t * (A3 + t * (A4 + t * A5)))) * g;
    const erf = (Number(z >= 0) * 2 - 1) * (1 - e);
    // phi(x) = exp(-x^2 / 2) / sqrt(2 pi) = g / sqrt(2 pi)
    out[i] = dy[i] * (0.5 * (1 + erf) + v * g * INV_SQRT_2PI);
  }
}

export function geluKernels(): tf.KernelConfig[] {
  const gelu: tf.KernelFunc = (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const be = asFusion(args.backend);
    const xv = be.f32(x);
    const out = be.pool.alloc(xv.length);
    geluForward(xv, out);
    return be.output([...x.shape], out);
  };
  const geluGrad: tf.KernelFunc = (args) => {
    const { dy, x } = args.inputs as { dy: tf.TensorInfo; x: tf.TensorInfo };
    const be = asFusion(args.backend);
    const xv = be.f32(x);
    const out = be.pool.alloc(xv.length);
    geluBackward(be.f32(dy), xv, out);
    return be.output([...x.shape], out);
  };
  return [
    { kernelName: GELU_KERNEL, backendName: FUSION_BACKEND, kernelFunc: gelu },
    { kernelName: GELU_GRAD_KERNEL, backendName: FUSION_BACKEND, kernelFunc: geluGrad },
  ];
}
