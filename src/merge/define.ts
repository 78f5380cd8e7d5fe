// defineMethod: turns a declaration plus a kernel into a MergeMethodSpec whose merge() validates its input
// (tensor layout, base presence, model count, parameters) before the kernel runs.

import { FusionError } from "../errors.js";
import { resolveParams } from "./params.js";
import { seededMasks } from "./random.js";
import type {
  MaskSource,
  MergeInput,
  MergeMethodSpec,
  MergeResult,
  ParamSpec,
  ResolvedParams,
  StreamChunk,
  StreamingMerge,
  TensorData,
} from "./types.js";

/** What a method kernel receives: validated tensors and resolved parameters. */
export interface MergeContext {
  readonly method: string;
  readonly tensor: string;
  readonly isEmbed: boolean;
  readonly models: readonly TensorData[];
  readonly base: TensorData | undefined;
  readonly params: ResolvedParams;
  /** Aligned with `models`. */
  readonly modelParams: readonly ResolvedParams[];
  /** Mask source for random methods (seeded from `seed` unless the caller supplied one). */
  readonly masks: MaskSource;
  /** Where the result may be written (see MergeInput.out). */
  readonly out: Float32Array | undefined;
}

export interface MethodDefinition extends Omit<MergeMethodSpec, "merge"> {
  run(ctx: MergeContext): MergeResult;
}

/** FusionError MERGE_INVALID naming the method and tensor (and parameter when given). */
export function mergeError(ctx: { method: string; tensor: string }, message: string, key?: string): FusionError {
  return new FusionError("MERGE_INVALID", `${ctx.method}: ${message}`, { tensor: ctx.tensor, key });
}

/** FusionError SHAPE_MISMATCH naming the method and tensor. */
export function shapeError(ctx: { method: string; tensor: string }, message: string): FusionError {
  return new FusionError("SHAPE_MISMATCH", `${ctx.method}: ${message}`, { tensor: ctx.tensor });
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function shapeNumel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function checkTensor(where: { method: string; tensor: string }, t: TensorData | undefined, label: string): void {
  if (t === undefined || !(t.data instanceof Float32Array)) {
    throw new FusionError("INVALID_ARGUMENT", `${where.method}: ${label} must be a Float32Array tensor`, {
      tensor: where.tensor,
    });
  }
  const shape = t.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw shapeError(where, `${label} has an invalid shape ${JSON.stringify(shape)}`);
  }
  if (shapeNumel(shape) !== t.data.length) {
    throw shapeError(where, `${label} has ${t.data.length} elements but shape [${shape.join(", ")}]`);
  }
}

function validate(def: MethodDefinition, input: MergeInput): MergeContext {
  const where = { method: def.name, tensor: String(input.tensorName) };
  const models = input.models;
  if (!Array.isArray(models)) throw mergeError(where, "models must be an array of tensors");
  for (let i = 0; i < models.length; i++) checkTensor(where, models[i], `model ${i}`);
  if (input.base !== undefined) checkTensor(where, input.base, "base");
  if (def.base === "required" && input.base === undefined) throw mergeError(where, "requires a base model");
  if (def.base === "unused" && input.base !== undefined) {
    throw mergeError(where, "takes no base model (pass it as an ordinary model instead)");
  }
  const { min, max } = def.models;
  if (models.length < min || (max !== undefined && models.length > max)) {
    const want = max === undefined ? `at least ${min}` : min === max ? `exactly ${min}` : `${min} to ${max}`;
    throw mergeError(
      where,
      `expects ${want} model(s)${def.base === "unused" ? "" : " besides the base"}, got ${models.length}`,
    );
  }
  const mp = input.modelParams;
  if (mp !== undefined && mp.length !== models.length) {
    throw mergeError(where, `got parameters for ${mp.length} models but ${models.length} models`);
  }
  const params = resolveParams(def.parameters, input.params, where);
  const modelParams = models.map((_, i) => resolveParams(def.modelParameters, mp?.[i], { ...where, model: i }));
  const seed = input.seed ?? 0;
  let masks = input.masks;
  if (masks === undefined) {
    if (!Number.isSafeInteger(seed)) throw mergeError(where, `seed must be a safe integer, got ${seed}`, "seed");
    masks = def.random ? seededMasks(seed, where.tensor) : NO_MASKS;
  }
  return {
    method: def.name,
    tensor: where.tensor,
    isEmbed: input.isEmbed === true,
    models,
    base: input.base,
    params,
    modelParams,
    masks,
    out: input.out instanceof Float32Array ? input.out : undefined,
  };
}

const NO_MASKS: MaskSource = {
  fill() {
    throw new Error("internal: a deterministic merge method asked for a random mask");
  },
};

/** Build a MergeMethodSpec from a definition. */
export function defineMethod(def: MethodDefinition): MergeMethodSpec {
  const { run, ...decl } = def;
  return Object.freeze({
    ...decl,
    parameters: Object.freeze([...def.parameters]) as readonly ParamSpec[],
    modelParameters: Object.freeze([...def.modelParameters]) as readonly ParamSpec[],
    merge(input: MergeInput): MergeResult {
      const ctx = validate(def, input);
      // Empty tensors (0 elements, one shape): nothing to merge; spares every kernel the k = 0 / zero-norm cases.
      const all = ctx.base === undefined ? ctx.models : [...ctx.models, ctx.base];
      if (all.length > 0 && all.every((t) => t.data.length === 0 && sameShape(t.shape, all[0]!.shape))) {
        return { data: new Float32Array(0), shape: [...all[0]!.shape] };
      }
      return run(ctx);
    },
  });
}

/**
 * A streaming merge driven over a single chunk that holds the whole tensor: the whole-tensor form of a method
 * whose arithmetic lives in its stream (one implementation for both paths, so the same bits by construction).
 */
export function runStreamWhole(stream: StreamingMerge, chunk: StreamChunk, out: Float32Array): Float32Array {
  for (let pass = 0; pass < stream.passes; pass++) {
    stream.observe(pass, chunk);
    stream.endPass(pass);
  }
  stream.emit(chunk, out);
  return out;
}

/** A fresh copy of a tensor as a merge result. */
export function copyResult(t: TensorData): MergeResult {
  return { data: t.data.slice(), shape: [...t.shape] };
}
