/** config/: the mergekit-compatible YAML merge configuration and parameter resolution. */
export { type ConfigDType, dtypeFromConfig } from "./dtype.js";
export {
  baseModelOf,
  evaluateSetting,
  layerT,
  normalizeToSlices,
  type ParameterContext,
  type ParameterOptions,
  ParameterReader,
  type ParameterValue,
  referencedModels,
  resolveParameter,
  type SettingInput,
  tokenizerSourceModel,
} from "./parameters.js";
export { loadMergeConfig, parseMergeConfig } from "./parse.js";
export type * from "./types.js";
