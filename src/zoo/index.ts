/**
 * `fusionkit/zoo`: everything that trains or evaluates networks on data — the model pools, training, evaluation, the
 * datasets and task suites, and the functional models. A subpath of its own because it loads TensorFlow.js.
 */
export * from "../data/index.js";
export * from "../eval/index.js";
export * from "../nn/models/index.js";
export * from "../train/index.js";
export * from "./build.js";
export * from "./profiles.js";
