/** nn: TensorFlow.js set-up for Node (fast `fusionkit` backend over native BLAS; wasm and cpu fallbacks). */
export { FUSION_BACKEND, FusionBackend } from "./backend.js";
export { blas, blasLoadError } from "./blas.js";
export { type Activation, type Conv2DOptions, conv2d, dense } from "./layers.js";
export { adam, FusedAdamOptimizer } from "./optim.js";
export { fusionKernelNames, registerFusionBackend } from "./register.js";
export {
  describeNNBackend,
  type InitNNOptions,
  initNN,
  NN_BACKENDS,
  type NNBackendInfo,
  type NNBackendName,
  nnBackend,
} from "./select.js";
