/**
 * Parameter resolution with mergekit's semantics: evaluating one setting for a tensor at a layer position `t`, the
 * precedence of the places a parameter can be set, and turning `models:` into one output slice.
 */
import { FusionError } from "../errors.js";
import type { ConditionalParameter, MergeConfig, OutputSliceDefinition, ParameterSetting } from "./types.js";

/** What a setting evaluates to for one tensor. */
export type ParameterValue = number | boolean | string;

/** Anything `evaluateSetting` understands: the schema's settings, plus lists of strings / booleans built in code. */
export type SettingInput = ParameterSetting | readonly (number | boolean | string)[];

const isScalar = (v: unknown): v is ParameterValue =>
  typeof v === "number" || typeof v === "boolean" || typeof v === "string";

function filterMatches(filter: string | undefined, tensorName: string | undefined): boolean {
  return filter === undefined || filter === "*" || (!!tensorName && tensorName.includes(filter));
}

/**
 * mergekit's `evaluate_setting`:
 * - a scalar is itself;
 * - a list of numbers is a gradient: with `s = t * (n - 1)`, `i0 = trunc(s)`, `i1 = min(n - 1, i0 + 1)`, the value is
 *   the linear interpolation between elements i0 and i1;
 * - a list of other scalars gives element `trunc(t * (n - 1))`, no interpolation;
 * - a conditional, or a list of them: the first whose filter is absent, `*`, or a substring of `tensorName` is
 *   evaluated; none matching gives undefined (so a lower-precedence setting applies).
 * @param t the position within the slice, 0 at its first layer and 1 at its last (see `layerT`)
 */
export function evaluateSetting(
  tensorName: string | undefined,
  setting: SettingInput | ConditionalParameter,
  t = 0,
): ParameterValue | undefined {
  if (!(t >= 0 && t <= 1)) throw new FusionError("INVALID_ARGUMENT", `gradient position t must be in [0, 1], got ${t}`);
  if (isScalar(setting)) return setting;
  const list: readonly unknown[] = Array.isArray(setting) ? setting : [setting];
  if (list.length === 0) return undefined;
  if (list.every((e) => typeof e === "number")) {
    const nums = list as readonly number[];
    const scaled = t * (nums.length - 1);
    const i0 = Math.trunc(scaled);
    const i1 = Math.min(nums.length - 1, i0 + 1);
    const frac = scaled - i0;
    return (1 - frac) * nums[i0]! + frac * nums[i1]!;
  }
  if (list.every(isScalar)) return list[Math.trunc(t * (list.length - 1))] as ParameterValue;
  for (const cond of list as readonly ConditionalParameter[]) {
    if (filterMatches(cond.filter, tensorName)) return evaluateSetting(tensorName, cond.value, t);
  }
  return undefined;
}

/**
 * The gradient position of layer `index` (0-based) of a slice `numLayers` long: `index / (numLayers - 1)`, and 1 for a
 * one-layer slice, as mergekit plans layers. Weights outside the layers (embeddings, final norm, head) use t = 0.
 */
export function layerT(index: number, numLayers: number): number {
  return numLayers > 1 ? index / (numLayers - 1) : 1;
}

/** Where a parameter is being read: the output slice (if any), the tensor, and its gradient position. */
export interface ParameterContext {
  slice?: OutputSliceDefinition;
  /** the tensor being planned (conditionals filter on it) */
  tensorName?: string;
  /** gradient position, 0..1 (see `layerT`); 0 when absent */
  t?: number;
}

export interface ParameterOptions {
  /** the input model the parameter is for (per-model parameters such as `weight`); omit for global ones */
  model?: string;
  /** throw when the parameter is set nowhere (and `default` is not used) */
  required?: boolean;
  /** returned when the parameter is set nowhere and not required */
  default?: ParameterValue;
}

/**
 * Resolves parameter `name` with mergekit's precedence; the first place that yields a value wins:
 * 1. `slices[].sources[].parameters` of the source whose model is `options.model` (only when a model is given;
 *    for a `models:` config these are `models[].parameters`, see `normalizeToSlices`),
 * 2. `slices[].parameters` of the context's slice,
 * 3. the global `parameters`.
 * A conditional that matches nothing yields no value and falls through to the next place.
 * @throws FusionError CONFIG_INVALID naming the parameter, model and tensor when `required` and set nowhere
 */
export function resolveParameter(
  config: MergeConfig,
  name: string,
  context: ParameterContext = {},
  options: ParameterOptions = {},
): ParameterValue | undefined {
  const { slice, tensorName: tensor, t = 0 } = context;
  const read = (params: Record<string, ParameterSetting> | undefined): ParameterValue | undefined =>
    params && Object.hasOwn(params, name) ? evaluateSetting(tensor, params[name]!, t) : undefined;

  if (slice) {
    if (options.model !== undefined) {
      for (const source of slice.sources) {
        if (source.model !== options.model) continue;
        const v = read(source.parameters);
        if (v !== undefined) return v;
      }
    }
    const v = read(slice.parameters);
    if (v !== undefined) return v;
  }
  const v = read(config.parameters);
  if (v !== undefined) return v;

  if (options.required) {
    const forModel = options.model === undefined ? "" : ` for model '${options.model}'`;
    throw new FusionError(
      "CONFIG_INVALID",
      `required parameter '${name}' is not set${forModel}; ` +
        "set it under models[].parameters, slices[].sources[].parameters, slices[].parameters or parameters",
      { file: config.source, tensor },
    );
  }
  return options.default;
}

/** The base model in effect: the slice's own `base_model`, else the config's. */
export function baseModelOf(config: MergeConfig, slice?: OutputSliceDefinition): string | undefined {
  return slice?.base_model ?? config.base_model;
}

/** mergekit's ConfigReader as an immutable value: narrow it to a slice, a tensor and a `t`, then read parameters. */
export class ParameterReader {
  constructor(
    readonly config: MergeConfig,
    readonly context: ParameterContext = {},
  ) {}

  forSlice(slice: OutputSliceDefinition): ParameterReader {
    return new ParameterReader(this.config, { ...this.context, slice });
  }

  forTensor(tensorName: string): ParameterReader {
    return new ParameterReader(this.config, { ...this.context, tensorName });
  }

  withT(t: number): ParameterReader {
    return new ParameterReader(this.config, { ...this.context, t });
  }

  get baseModel(): string | undefined {
    return baseModelOf(this.config, this.context.slice);
  }

  parameter(name: string, options: ParameterOptions = {}): ParameterValue | undefined {
    return resolveParameter(this.config, name, this.context, options);
  }
}

/**
 * The config's output slices. `slices:` is returned as is; `models:` becomes mergekit's single slice: every model over
 * layers [0, numLayersOf(model)) with its parameters, then the base model (without parameters) when it is not one of
 * the models.
 */
export function normalizeToSlices(
  config: MergeConfig,
  numLayersOf: (model: string) => number,
): OutputSliceDefinition[] {
  if (config.slices) return config.slices;
  const models = config.models ?? [];
  const sources = models.map((m) => ({
    model: m.model,
    layer_range: [0, numLayersOf(m.model)] as [number, number],
    ...(m.parameters ? { parameters: m.parameters } : {}),
  }));
  const base = config.base_model;
  if (base !== undefined && !models.some((m) => m.model === base)) {
    sources.push({ model: base, layer_range: [0, numLayersOf(base)] });
  }
  return [{ sources }];
}

/**
 * Every model the config reads tensors from, each once, in first-appearance order with the base model first:
 * `base_model`, then `models[]` in order, or for `slices:` each slice's `base_model` followed by its sources.
 * (mergekit returns an unordered set and leaves out per-slice base models; both are needed to load weights here.)
 * The tokenizer source is not included: it supplies a tokenizer, not tensors.
 */
export function referencedModels(config: MergeConfig): string[] {
  const seen = new Set<string>();
  const add = (m: string | undefined) => {
    if (m !== undefined) seen.add(m);
  };
  add(config.base_model);
  for (const m of config.models ?? []) add(m.model);
  for (const s of config.slices ?? []) {
    add(s.base_model);
    for (const src of s.sources) add(src.model);
  }
  return [...seen];
}

/**
 * The model whose tokenizer the merged model gets: `tokenizer_source: base` means the base model (or, as in mergekit,
 * the first referenced model when there is none); a model name means that model; unset means undefined.
 */
export function tokenizerSourceModel(config: MergeConfig): string | undefined {
  const source = config.tokenizer_source;
  if (source === undefined) return undefined;
  if (source === "base") return config.base_model ?? referencedModels(config)[0];
  return source;
}
