/** Helpers shared by the fusionkit kernels: the cpu fallback for a kernel, float32 checks. */
import * as tf from "@tensorflow/tfjs";

/** tfjs-backend-cpu's implementation of a kernel, for the inputs a fast path does not cover. */
export function cpuKernel(name: string): tf.KernelFunc {
  const k = tf.getKernel(name, "cpu");
  if (k === undefined) throw new Error(`tfjs cpu backend has no kernel ${name}`);
  return k.kernelFunc;
}

/** True when every tensor is float32 (the only dtype the fast paths handle). */
export function allFloat32(...ts: (tf.TensorInfo | undefined)[]): boolean {
  for (const t of ts) if (t !== undefined && t.dtype !== "float32") return false;
  return true;
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
