// Public surface of fusionkit's merge methods: per-tensor merge functions with declarative specs.

export type { ConsensusMethod } from "./consensus.js";
export { electedSign, signConsensusMasks } from "./consensus.js";
export { checkParam, describeRange, resolveParams, unknownParams } from "./params.js";
export { maskStreamKey, replayMasks, seededMasks } from "./random.js";
export { getMethod, hasMethod, listMethods, methodNames, suggestMethod } from "./registry.js";
export type { RescaleNorm, SparsificationMethod, SparsifyOptions, SparsityMask } from "./sparsify.js";
export { applySparsity, rescaleFactor, sparsify, sparsityMask } from "./sparsify.js";
export type {
  MaskSource,
  MergeInput,
  MergeMethodSpec,
  MergeResult,
  ParamSpec,
  ParamValue,
  ParamValues,
  ResolvedParams,
  TensorData,
} from "./types.js";
