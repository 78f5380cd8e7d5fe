/**
 * Relu's gradient as one kernel, dy * (x > 0), instead of tfjs's Step + Cast + Multiply (two passes over memory and a
 * mispredicted branch per element). Registered as Relu's gradient for the fusionkit backend; other backends keep
 * tfjs's gradient.
 */
import * as tf from "@tensorflow/tfjs";
import { asFusion, FUSION_BACKEND } from "../backend.js";

export const RELU_GRAD_KERNEL = "FusionkitReluGrad";

export function reluGradKernel(): tf.KernelConfig {
  const kernelFunc: tf.KernelFunc = (args) => {
    const { dy, x } = args.inputs as { dy: tf.TensorInfo; x: tf.TensorInfo };
    const be = asFusion(args.backend);
    const g = be.f32(dy);
    const xv = be.f32(x);
    const out = be.pool.alloc(g.length);
    for (let i = 0; i < g.length; i++) {
      const v = xv[i];
      out[i] = Number.isNaN(v) ? v : g[i] * Number(v > 0);
    }
    return be.output([...x.shape], out);
  };
  return { kernelName: RELU_GRAD_KERNEL, backendName: FUSION_BACKEND, kernelFunc };
}

export const RELU_GRAD_BIAS_KERNEL = "FusionkitReluGradBias";

/**
 * dz = dy * (y > 0) (NaN where y is NaN) over rows of n values, and db = the column sums of dz (accumulated in
 * float64).
 */
export function reluGradSums(dy: Float32Array, y: Float32Array, n: number, dz: Float32Array, db: Float32Array): void {
  const acc = new Float64Array(n);
  for (let r = 0; r < dy.length; r += n) {
    for (let j = 0; j < n; j++) {
      const v = y[r + j];
      const d = Number.isNaN(v) ? v : dy[r + j] * Number(v > 0);
      dz[r + j] = d;
      acc[j] += d;
    }
  }
  db.set(acc);
}

/**
 * For y = relu(z + bias) with the bias on the last axis: dz = dy * (y > 0) and the bias gradient (dz summed over every
 * axis but the last) in one pass, instead of the mask pass plus a Sum pass over dz.
 */
export function reluGradBiasKernel(): tf.KernelConfig {
  const kernelFunc: tf.KernelFunc = (args) => {
    const { dy, y } = args.inputs as { dy: tf.TensorInfo; y: tf.TensorInfo };
    const be = asFusion(args.backend);
    const g = be.f32(dy);
    const n = y.shape.at(-1) ?? 1;
    const dz = be.pool.alloc(g.length);
    const db = be.pool.alloc(n);
    reluGradSums(g, be.f32(y), n, dz, db);
    return [be.output([...y.shape], dz), be.output([n], db)];
  };
  return { kernelName: RELU_GRAD_BIAS_KERNEL, backendName: FUSION_BACKEND, kernelFunc };
}

let registered = false;

/** Replaces Relu's gradient with one that uses the fused kernel on fusionkit (float32) and tfjs's otherwise. */
export function registerReluGradient(): void {
  if (registered) return;
  const original = tf.getGradient("Relu");
  if (original === undefined) return;
  registered = true;
  tf.registerGradient({
    ...original,
    gradFunc: (dy, saved, attrs) => {
      const x = saved[0];
      if (tf.getBackend() !== FUSION_BACKEND || x.dtype !== "float32" || (dy as tf.Tensor).dtype !== "float32")
        return original.gradFunc(dy, saved, attrs);
      return { x: () => tf.engine().runKernel(RELU_GRAD_KERNEL, { dy: dy as tf.Tensor, x }) as tf.Tensor };
    },
  });
}
