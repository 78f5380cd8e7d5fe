/** Functional models over named PyTorch-layout parameter maps, their heads, permutations and checkpoints. */
export {
  describeModel,
  loadParams,
  MODEL_ARCHS,
  type ModelDescriptor,
  modelFromConfig,
  saveParams,
} from "./checkpoint.js";
export { initValues } from "./common.js";
export { applyHead, headParams, initHead, permutationSpecWithHead } from "./head.js";
export { LLAMA_DEFAULTS, type LlamaConfig, llama } from "./llama.js";
export { MLP_DEFAULTS, type MLPConfig, mlp } from "./mlp.js";
export { gelu } from "./ops.js";
export { applyPermutation, identityPermutations, validatePermutationSpec } from "./permute.js";
export { RESNET20_DEFAULTS, type ResNet20Config, resnet20 } from "./resnet.js";
export type {
  ForwardOptions,
  ForwardResult,
  Model,
  ParamSpec,
  Params,
  PermutationGroup,
  PermutationSpec,
} from "./types.js";
export { VGG_DEFAULTS, type VGGConfig, vgg } from "./vgg.js";
export { VIT_DEFAULTS, type ViTConfig, vit } from "./vit.js";
