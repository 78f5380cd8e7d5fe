/**
 * The mergekit-compatible merge configuration, as plain data.
 *
 * The names and shapes follow mergekit's YAML schema (mergekit/config.py) so that a mergekit config file parses into
 * these types unchanged. `parseMergeConfig` produces them; everything downstream reads them.
 */

/** A parameter value: a scalar, or a list of numbers interpolated over the layers of a slice (a "gradient"). */
export type ScalarOrGradient = number | boolean | string | number[];

/** A value that applies only to tensors whose name contains `filter` (absent or `*`: every tensor). */
export interface ConditionalParameter {
  filter?: string;
  value: ScalarOrGradient;
}

/** What a config may write for one parameter: a value, a conditional value, or a list of conditionals (first match wins). */
export type ParameterSetting = ScalarOrGradient | ConditionalParameter | ConditionalParameter[];

/** Parameter name -> setting, e.g. `{ weight: 0.5, density: [1, 0.5] }`. */
export type Parameters = Record<string, ParameterSetting>;

/** One entry of `models:`, a whole model taking part in the merge. */
export interface InputModelDefinition {
  model: string;
  parameters?: Parameters;
}

/** One entry of `slices[].sources`: layers `[start, end)` of one model. */
export interface InputSliceDefinition {
  model: string;
  layer_range: [number, number];
  parameters?: Parameters;
}

/** One entry of `slices:`: a run of output layers, merged from sources that all span the same number of layers. */
export interface OutputSliceDefinition {
  sources: InputSliceDefinition[];
  base_model?: string;
  residual_weight?: number;
  parameters?: Parameters;
}

/** A whole merge configuration. Exactly one of `models` / `slices` is set. */
export interface MergeConfig {
  merge_method: string;
  base_model?: string;
  models?: InputModelDefinition[];
  slices?: OutputSliceDefinition[];
  parameters?: Parameters;
  /** the dtype to merge in, normalised to a safetensors name: "F32" | "F16" | "BF16" */
  dtype?: string;
  /** the dtype to write, normalised to a safetensors name: "F32" | "F16" | "BF16" */
  out_dtype?: string;
  /** `base` or a model reference (a `tokenizer: { source }` block is mapped here when it says nothing more) */
  tokenizer_source?: string;
  chat_template?: string;
  /** where the config came from, for error messages and resolving relative model paths */
  source?: string;
}
