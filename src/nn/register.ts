/**
 * Registers the `fusionkit` backend: every tfjs-backend-cpu kernel re-registered under the new name, then the fast
 * kernels (GEMM, convolution, elementwise, reductions) registered over them. Needs the native BLAS; returns false
 * without registering anything when it does not load.
 */
import * as tf from "@tensorflow/tfjs";
import { FUSION_BACKEND, FusionBackend } from "./backend.js";
import { blas } from "./blas.js";
import { adamKernel } from "./kernels/adam.js";
import { convKernels } from "./kernels/conv.js";
import { convPoolGradKernel, convPoolKernel } from "./kernels/conv-pool.js";
import { elementwiseKernels } from "./kernels/elementwise.js";
import { geluKernels } from "./kernels/gelu.js";
import { matMulKernels } from "./kernels/matmul.js";
import { poolingKernels } from "./kernels/pooling.js";
import { reduceKernels } from "./kernels/reduce.js";
import { registerReluGradient, reluGradBiasKernel, reluGradKernel } from "./kernels/relu-grad.js";

let registered = false;

export function registerFusionBackend(): boolean {
  if (registered) return true;
  const native = blas();
  if (native === null) return false;
  tf.registerBackend(FUSION_BACKEND, () => new FusionBackend(), 0);
  for (const k of tf.getKernelsForBackend("cpu")) tf.registerKernel({ ...k, backendName: FUSION_BACKEND });
  const fast: tf.KernelConfig[] = [
    ...matMulKernels(native.sgemm),
    ...convKernels(native.sgemm, native),
    convPoolKernel(native.sgemm, native),
    convPoolGradKernel(),
    ...elementwiseKernels(),
    ...reduceKernels(native.sgemv),
    ...poolingKernels(),
    ...geluKernels(),
    adamKernel(),
    reluGradKernel(),
    reluGradBiasKernel(),
  ];
  for (const k of fast) {
    if (tf.getKernel(k.kernelName, FUSION_BACKEND) !== undefined) tf.unregisterKernel(k.kernelName, FUSION_BACKEND);
    tf.registerKernel(k);
  }
  registerReluGradient();
  registered = true;
  return true;
}

/** Names of the kernels fusionkit implements itself (the rest are tfjs-backend-cpu's). */
export function fusionKernelNames(): string[] {
  const cpu = new Map(tf.getKernelsForBackend("cpu").map((k) => [k.kernelName, k.kernelFunc]));
  return tf
    .getKernelsForBackend(FUSION_BACKEND)
    .filter((k) => cpu.get(k.kernelName) !== k.kernelFunc)
    .map((k) => k.kernelName)
    .sort();
}
