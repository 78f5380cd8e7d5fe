import {
  type ArchTemplate,
  autoTemplate,
  countLayers,
  layerName,
  TEMPLATES,
  templateForConfig,
  type WeightTemplate,
} from "../arch/template.js";
import { normalizeToSlices, ParameterReader } from "../config/parameters.js";
import { dtypeFromConfig } from "../config/parse.js";
import type { MergeConfig, OutputSliceDefinition } from "../config/types.js";
import { FusionError } from "../errors.js";
import { resolveParams } from "../merge/params.js";
import { getMethod } from "../merge/registry.js";
import type { MergeMethodSpec, ParamValue, ResolvedParams } from "../merge/types.js";
import { type DType, dtypeSize, isFloatDType } from "../tensor/dtype.js";
import { formatShape, numel, sameShape } from "../tensor/tensor.js";
import { type InputModel, openInputModel } from "./models.js";

/** One input tensor of a planned output tensor. */
export interface PlannedInput {
  /** Index into `MergePlan.models`. */
  readonly model: number;
  readonly tensor: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly bytes: number;
}

/** An output tensor: where its inputs come from, how they are merged, what is written. */
export interface PlannedTensor {
  readonly name: string;
  readonly isEmbed: boolean;
  /** The method's models, in config order (the base excluded when the method takes one). */
  readonly inputs: readonly PlannedInput[];
  readonly base: PlannedInput | undefined;
  readonly params: ResolvedParams;
  readonly modelParams: readonly ResolvedParams[];
  readonly outDtype: DType;
  readonly outShape: readonly number[];
}

export interface MergePlan {
  readonly method: MergeMethodSpec;
  readonly models: readonly InputModel[];
  readonly architecture: ArchTemplate;
  readonly tensors: readonly PlannedTensor[];
  /** Layer count of the output. */
  readonly numLayers: number;
  /** Model whose config.json, tokenizer and tag-along files the output takes. */
  readonly donor: number;
  /** Model whose tokenizer is copied (tokenizer_source), or the donor. */
  readonly tokenizerModel: number;
  readonly outConfig: Record<string, unknown> | undefined;
  /** dtype inputs are rounded to before merging (config `dtype`), if any. */
  readonly computeDtype: DType | undefined;
  readonly bytesRead: number;
  readonly bytesWritten: number;
  readonly warnings: readonly string[];
  close(): void;
}

export interface PlanOptions {
  allowCrimes?: boolean;
  skipMismatched?: boolean;
}

const TORCH_DTYPE: Partial<Record<DType, string>> = {
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
  F64: "float64",
};

/** YAML paths of every model reference, first mention first. */
function modelKeys(config: MergeConfig): Map<string, string> {
  const keys = new Map<string, string>();
  const add = (ref: string | undefined, key: string) => {
    if (ref !== undefined && !keys.has(ref)) keys.set(ref, key);
  };
  add(config.base_model, "base_model");
  for (const [i, m] of (config.models ?? []).entries()) add(m.model, `models[${i}].model`);
  for (const [i, s] of (config.slices ?? []).entries()) {
    add(s.base_model, `slices[${i}].base_model`);
    for (const [j, src] of s.sources.entries()) add(src.model, `slices[${i}].sources[${j}].model`);
  }
  return keys;
}

function pickArchitecture(models: readonly InputModel[], allowCrimes: boolean, file: string | undefined): ArchTemplate {
  const found = models.map((m) => templateForConfig(m.config));
  const named = [...new Set(found.filter((t): t is ArchTemplate => t !== undefined))];
  if (named.length > 1 && !allowCrimes) {
    const list = models.map((m, i) => `${m.ref}: ${found[i]?.name ?? "unknown"}`).join(", ");
    throw new FusionError(
      "MERGE_INVALID",
      `models have different architectures (${list}); pass --allow-crimes to merge them anyway`,
      {
        file,
      },
    );
  }
  if (named.length > 0) return named[0]!;
  return autoTemplate(models[0]!.names, models[0]!.path);
}

/** Find a weight in a model: its name, an alias, then (for optional weights) a tied name. */
function findTensor(model: InputModel, name: string, w: WeightTemplate, layer: number | undefined): string | undefined {
  const sd = model.dir.stateDict;
  const subst = (n: string) => (layer === undefined ? n : layerName(n, layer));
  if (sd.has(name)) return name;
  for (const a of w.aliases ?? []) if (sd.has(subst(a))) return subst(a);
  if (w.optional) for (const t of w.tiedTo ?? []) if (sd.has(subst(t))) return subst(t);
  return undefined;
}

class Planner {
  readonly tensors: PlannedTensor[] = [];
  readonly warnings: string[] = [];
  private readonly sliceBases: Array<string | undefined>;
  private bytesRead = 0;
  private bytesWritten = 0;

  constructor(
    private readonly config: MergeConfig,
    private readonly method: MergeMethodSpec,
    private readonly models: readonly InputModel[],
    private readonly index: ReadonlyMap<string, number>,
    private readonly arch: ArchTemplate,
    private readonly slices: readonly OutputSliceDefinition[],
    private readonly outDtypeOverride: DType | undefined,
    private readonly options: PlanOptions,
  ) {
    this.sliceBases = slices.map((s) => s.base_model ?? config.base_model);
  }

  totals() {
    return { bytesRead: this.bytesRead, bytesWritten: this.bytesWritten };
  }

  run(): number {
    const first = 0;
    const last = this.slices.length - 1;
    for (const w of this.arch.pre) this.planWeight(w, w.name, undefined, first, () => w.name, 0);
    let outLayer = 0;
    this.slices.forEach((slice, si) => {
      const [start, end] = slice.sources[0]!.layer_range;
      const n = end - start;
      for (let idx = 0; idx < n; idx++) {
        const t = n > 1 ? idx / (n - 1) : 1;
        for (const w of this.arch.layer) {
          this.planWeight(w, layerName(w.name, outLayer), idx, si, (src) => layerName(w.name, src + idx), t);
        }
        outLayer++;
      }
    });
    for (const w of this.arch.post) this.planWeight(w, w.name, undefined, last, () => w.name, 0);
    return outLayer;
  }

  private where(si: number): string {
    return this.config.slices !== undefined ? `slices[${si}]` : "models";
  }

  private planWeight(
    w: WeightTemplate,
    outName: string,
    layerOffset: number | undefined,
    si: number,
    inName: (sourceStart: number) => string,
    t: number,
  ): void {
    const slice = this.slices[si]!;
    const found = slice.sources.map((src) => {
      const model = this.models[this.index.get(src.model)!]!;
      const layer = layerOffset === undefined ? undefined : src.layer_range[0] + layerOffset;
      const name = inName(src.layer_range[0]);
      return { src, model, wanted: name, name: findTensor(model, name, w, layer) };
    });
    const missing = found.filter((f) => f.name === undefined);
    if (missing.length === found.length && (w.optional || this.arch.auto)) return; // absent everywhere: not written
    if (missing.length > 0) {
      const m = missing[0]!;
      throw new FusionError(
        "TENSOR_NOT_FOUND",
        `model '${m.model.ref}' has no tensor '${m.wanted}' (needed for output '${outName}')`,
        {
          file: m.model.path,
          tensor: m.wanted,
          key: m.model.key,
        },
      );
    }
    const baseRef = this.sliceBases[si];
    const takesBase = this.method.base !== "unused";
    const baseIdx = takesBase && baseRef !== undefined ? found.findIndex((f) => f.src.model === baseRef) : -1;
    if (this.method.base === "required" && baseIdx < 0) {
      throw new FusionError(
        "MERGE_INVALID",
        baseRef === undefined
          ? `merge_method ${this.method.name} needs a base_model`
          : `base model '${baseRef}' is not among the sources of ${this.where(si)}`,
        { file: this.config.source, key: baseRef === undefined ? "base_model" : `${this.where(si)}.sources` },
      );
    }
    const inputs: PlannedInput[] = found.map((f) => {
      const info = f.model.dir.stateDict.info(f.name!);
      return {
        model: this.index.get(f.src.model)!,
        tensor: f.name!,
        dtype: info.dtype,
        shape: info.shape,
        bytes: info.end - info.begin,
      };
    });
    const isEmbed = w.embed === true;
    // Shapes: equal, or (embeddings) cropped to the common submatrix as mergekit does.
    let outShape = inputs[0]!.shape;
    if (!inputs.every((x) => sameShape(x.shape, outShape))) {
      if (isEmbed && inputs.every((x) => x.shape.length === 2)) {
        outShape = [Math.min(...inputs.map((x) => x.shape[0]!)), Math.min(...inputs.map((x) => x.shape[1]!))];
        this.warnings.push(`${outName}: embedding sizes differ; using the common ${formatShape(outShape)} submatrix`);
      } else {
        const list = inputs.map((x, i) => `${found[i]!.model.ref} ${formatShape(x.shape)}`).join(", ");
        if (this.options.skipMismatched) {
          this.warnings.push(`${outName}: skipped, shapes differ (${list})`);
          return;
        }
        throw new FusionError("SHAPE_MISMATCH", `shapes differ: ${list} (--skip-mismatched leaves such tensors out)`, {
          tensor: outName,
        });
      }
    }
    for (const x of inputs) {
      if (!isFloatDType(x.dtype) && this.method.name !== "passthrough") {
        throw new FusionError("DTYPE_MISMATCH", `${x.dtype} tensors cannot be merged with ${this.method.name}`, {
          tensor: x.tensor,
          file: this.models[x.model]!.path,
        });
      }
    }
    const reader = new ParameterReader(this.config, { slice, t, tensorName: outName });
    const where = { method: this.method.name, tensor: outName };
    const globals: Record<string, ParamValue | null> = {};
    for (const p of this.method.parameters) {
      const v = reader.parameter(p.name, {});
      if (v !== undefined) globals[p.name] = v as ParamValue;
    }
    const params = resolveParams(this.method.parameters, globals, where);
    const modelParams: ResolvedParams[] = [];
    const methodInputs: PlannedInput[] = [];
    found.forEach((f, i) => {
      if (i === baseIdx) return;
      const r = new ParameterReader(this.config, { slice, t, tensorName: f.name! });
      const values: Record<string, ParamValue | null> = {};
      for (const p of this.method.modelParameters) {
        const v = r.parameter(p.name, { model: f.src.model });
        if (v !== undefined) values[p.name] = v as ParamValue;
      }
      modelParams.push(resolveParams(this.method.modelParameters, values, { ...where, model: methodInputs.length }));
      methodInputs.push(inputs[i]!);
    });
    const { min, max } = this.method.models;
    if (methodInputs.length < min || (max !== undefined && methodInputs.length > max)) {
      const want = max === undefined ? `at least ${min}` : min === max ? `exactly ${min}` : `${min} to ${max}`;
      throw new FusionError(
        "MERGE_INVALID",
        `merge_method ${this.method.name} takes ${want} model(s)${takesBase ? " besides the base" : ""}, ${this.where(si)} gives ${methodInputs.length}`,
        { file: this.config.source, key: this.config.slices !== undefined ? `${this.where(si)}.sources` : "models" },
      );
    }
    const base = baseIdx >= 0 ? inputs[baseIdx] : undefined;
    const outDtype = this.outDtypeOverride ?? base?.dtype ?? inputs[0]!.dtype;
    this.tensors.push({ name: outName, isEmbed, inputs: methodInputs, base, params, modelParams, outDtype, outShape });
    this.bytesRead += inputs.reduce((s, x) => s + x.bytes, 0);
    this.bytesWritten += numel(outShape) * dtypeSize(outDtype);
  }
}

/** Turn a config into a plan: open every model's headers, resolve the architecture, tensors and parameters. */
export function planMerge(config: MergeConfig, options: PlanOptions = {}): MergePlan {
  const method = getMethod(config.merge_method, config.source);
  const keys = modelKeys(config);
  const models: InputModel[] = [];
  const close = () => {
    for (const m of models) m.dir.close();
  };
  try {
    for (const [ref, key] of keys) models.push(openInputModel(ref, key, config.source));
    const index = new Map(models.map((m, i) => [m.ref, i]));
    const arch = pickArchitecture(models, options.allowCrimes === true, config.source);
    const layersOf = (ref: string) => {
      const m = models[index.get(ref)!]!;
      return countLayers(arch, m.config, m.names);
    };
    const slices = normalizeToSlices(config, layersOf);
    for (const [si, s] of slices.entries()) {
      const lengths = s.sources.map((x) => x.layer_range[1] - x.layer_range[0]);
      if (!lengths.every((l) => l === lengths[0])) {
        throw new FusionError(
          "CONFIG_INVALID",
          `all sources of a slice must span the same number of layers (${lengths.join(", ")})`,
          {
            file: config.source,
            key: `slices[${si}].sources`,
          },
        );
      }
      for (const [j, src] of s.sources.entries()) {
        const have = layersOf(src.model);
        if (src.layer_range[1] > have) {
          throw new FusionError(
            "CONFIG_INVALID",
            `layer_range [${src.layer_range.join(", ")}] exceeds the ${have} layers of '${src.model}'`,
            {
              file: config.source,
              key: `slices[${si}].sources[${j}].layer_range`,
            },
          );
        }
      }
    }
    const computeDtype = config.dtype === undefined ? undefined : dtypeFromConfig(config.dtype, "dtype");
    const outDtype = config.out_dtype === undefined ? computeDtype : dtypeFromConfig(config.out_dtype, "out_dtype");
    const planner = new Planner(config, method, models, index, arch, slices, outDtype, options);
    const numLayers = planner.run();
    planner.warnings.unshift(...unknownParameterWarnings(config, method));
    const donor = config.base_model !== undefined ? index.get(config.base_model)! : 0;
    let tokenizerModel = donor;
    const ts = config.tokenizer_source;
    if (ts !== undefined && ts !== "base") {
      const i = index.get(ts);
      if (i === undefined) {
        throw new FusionError("CONFIG_INVALID", `tokenizer_source '${ts}' is not one of the merged models`, {
          file: config.source,
          key: "tokenizer_source",
        });
      }
      tokenizerModel = i;
    }
    const outConfig = outputConfig(models[donor]!.config, arch, numLayers, outDtype, planner.tensors);
    return {
      method,
      models,
      architecture: arch,
      tensors: planner.tensors,
      numLayers,
      donor,
      tokenizerModel,
      outConfig,
      computeDtype,
      ...planner.totals(),
      warnings: planner.warnings,
      close,
    };
  } catch (e) {
    close();
    throw e;
  }
}

/** mergekit ignores parameters a method does not declare; a typo then goes unnoticed, so say so. */
function unknownParameterWarnings(config: MergeConfig, method: MergeMethodSpec): string[] {
  const known = new Set([...method.parameters, ...method.modelParameters].map((p) => p.name));
  const blocks: Array<[string, Record<string, unknown> | undefined]> = [["parameters", config.parameters]];
  for (const [i, m] of (config.models ?? []).entries()) blocks.push([`models[${i}].parameters`, m.parameters]);
  for (const [i, s] of (config.slices ?? []).entries()) {
    blocks.push([`slices[${i}].parameters`, s.parameters]);
    for (const [j, src] of s.sources.entries()) blocks.push([`slices[${i}].sources[${j}].parameters`, src.parameters]);
  }
  const out: string[] = [];
  for (const [path, params] of blocks) {
    for (const name of Object.keys(params ?? {})) {
      if (!known.has(name)) {
        out.push(
          `${path}.${name}: merge_method ${method.name} has no parameter '${name}' (it has: ${[...known].join(", ") || "none"}); ignored`,
        );
      }
    }
  }
  return out;
}

function outputConfig(
  donor: Record<string, unknown> | undefined,
  arch: ArchTemplate,
  numLayers: number,
  outDtype: DType | undefined,
  tensors: readonly PlannedTensor[],
): Record<string, unknown> | undefined {
  if (donor === undefined) return undefined;
  const out: Record<string, unknown> = { ...donor };
  if (arch.numLayersKey in out || !arch.auto) out[arch.numLayersKey] = numLayers;
  const dtype = outDtype ?? tensors[0]?.outDtype;
  if (dtype !== undefined && TORCH_DTYPE[dtype] !== undefined) out.torch_dtype = TORCH_DTYPE[dtype];
  const embed = tensors.find((t) => t.isEmbed && t.outShape.length === 2);
  if (embed !== undefined && typeof out.vocab_size === "number" && out.vocab_size !== embed.outShape[0]) {
    out.vocab_size = embed.outShape[0];
  }
  return out;
}

export { TEMPLATES };
