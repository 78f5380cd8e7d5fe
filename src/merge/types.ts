// The contract between merge methods and their callers (config resolution, engine, tests).

/** A parameter value as written in a merge config. */
export type ParamValue = number | boolean | string;

/** Parameter values keyed by name; `null` / `undefined` mean "not set" (the default applies). */
export type ParamValues = Readonly<Record<string, ParamValue | null | undefined>>;

/** Resolved parameters: every declared name present, defaults filled in; `null` only for optional-without-default. */
export type ResolvedParams = Readonly<Record<string, ParamValue | null>>;

/** Declaration of one parameter of a merge method. */
export interface ParamSpec {
  readonly name: string;
  /** "integer" accepts only safe integers; "number" any finite number. */
  readonly type: "number" | "integer" | "boolean" | "string";
  /**
   * Value used when the parameter is not set. `undefined` makes the parameter required; `null` makes it
   * optional with no value (the method then reads `null`).
   */
  readonly default?: ParamValue | null;
  /** Inclusive bounds unless the matching `*Exclusive` flag is set (numbers only). */
  readonly min?: number;
  readonly max?: number;
  readonly minExclusive?: boolean;
  readonly maxExclusive?: boolean;
  /** Allowed values (strings only). */
  readonly choices?: readonly string[];
  readonly description: string;
}

/** One input tensor: float32 values in row-major order and its shape. Never mutated by a merge. */
export interface TensorData {
  readonly data: Float32Array;
  readonly shape: readonly number[];
}

/** The output of a merge: a fresh array (never aliasing an input) and its shape. */
export interface MergeResult {
  readonly data: Float32Array;
  readonly shape: number[];
}

/**
 * Source of random keep-masks for the random sparsifiers (DARE, DELLA). `fill` writes model `modelIndex`'s
 * 0/1 mask for this tensor into `out`; element i must be kept with probability `probs` (a constant) or
 * `probs[i]`. Implementations: {@link import("./random.js").seededMasks} (reproducible draws keyed by seed,
 * tensor name and model index) and {@link import("./random.js").replayMasks} (given masks, for tests).
 */
export interface MaskSource {
  fill(modelIndex: number, probs: number | Float32Array, out: Uint8Array): void;
}

/** Everything a merge method sees for one output tensor. */
export interface MergeInput {
  /** Name of the output tensor (used in error messages and to key random masks). */
  readonly tensorName: string;
  /** Embedding-like tensor (token embeddings / LM head): a vocabulary-size mismatch is cropped, not an error. */
  readonly isEmbed?: boolean;
  /** The models' tensors, in config order (the base model is passed separately). */
  readonly models: readonly TensorData[];
  /** The base model's tensor, for methods that use one. */
  readonly base?: TensorData;
  /** Global (per-tensor) parameters; unset ones take their defaults. Unknown names are ignored. */
  readonly params?: ParamValues;
  /** Per-model parameters, aligned with `models`. */
  readonly modelParams?: readonly ParamValues[];
  /** Seed for random methods when `masks` is not given (default 0). */
  readonly seed?: number;
  /** Explicit mask source for random methods (overrides `seed`). */
  readonly masks?: MaskSource;
  /**
   * Optional destination for the result (as many elements as the result): a method may write its result there
   * and return it (the engine passes buffers it reuses, in WebAssembly memory), or ignore it.
   */
  readonly out?: Float32Array;
}

/** The declarative description of a merge method plus its per-tensor function. */
export interface MergeMethodSpec {
  /** Registry name, as in mergekit configs (`merge_method: ties`). */
  readonly name: string;
  /** Human-readable name. */
  readonly title: string;
  /** Paper or other reference (citation text, URL). */
  readonly reference: string;
  /** The mergekit source file whose semantics this method reproduces. */
  readonly mergekitRef: string;
  /**
   * "required": needs `base`; "optional": uses it when given; "unused": must not be given (a config that
   * names a base model for such a method passes it as an ordinary model, as mergekit's planner does).
   */
  readonly base: "required" | "optional" | "unused";
  /** Accepted number of (non-base) models; methods may impose finer rules (e.g. nuslerp with a base). */
  readonly models: { readonly min: number; readonly max?: number };
  /** Draws random masks (reproducible through `seed` / `masks`). */
  readonly random: boolean;
  /**
   * Whether, for these resolved parameters, element i of the result depends only on element i of the inputs
   * (and on parameters). The engine then merges large tensors chunk by chunk, which keeps the working set in cache.
   * Absent: never.
   */
  readonly elementwise?: (params: ResolvedParams, modelParams: readonly ResolvedParams[]) => boolean;
  /**
   * Optional multi-pass form for large tensors whose statistics span the whole tensor (top-k thresholds, norms):
   * returns a {@link StreamingMerge} that sees the tensor chunk by chunk, in index order, `passes` times, then emits
   * the output chunk by chunk. Its output must equal `merge`'s bit for bit. Undefined: not supported for these
   * parameters (the engine then merges the whole tensor at once).
   */
  readonly streaming?: (input: StreamInput) => StreamingMerge | undefined;
  /**
   * With `streaming`: an upper bound of the bytes its stream over `input` holds beyond the engine's chunk buffers
   * (chunks of at most `chunk` elements), or undefined where it does not stream. For the dry-run's estimate.
   */
  readonly streamingBytes?: (input: StreamInput, chunk: number) => number | undefined;
  /**
   * Optional fused WebAssembly form of an elementwise merge for bf16 inputs and a bf16 output (no float32 copies of
   * the chunks): returns a kernel over arena pointers, or undefined when these parameters have none. Its output must
   * equal `merge`'s, encoded to bf16, bit for bit. Validates the parameters as `merge` does.
   */
  readonly wasmBf16?: (input: Bf16Input) => Bf16Kernel | undefined;
  /** Global parameters (one value per tensor). */
  readonly parameters: readonly ParamSpec[];
  /** Per-model parameters (one value per model and tensor). */
  readonly modelParameters: readonly ParamSpec[];
  /**
   * Merge one tensor: validates inputs and parameters (throws FusionError MERGE_INVALID / SHAPE_MISMATCH
   * naming the tensor and parameter), fills defaults, and returns a fresh array. Pure apart from randomness,
   * which is fully determined by `seed` / `masks`.
   */
  merge(input: MergeInput): MergeResult;
}

/** What a fused bf16 kernel is built from: the tensor's name, parameters and number of models. */
export interface Bf16Input {
  readonly tensorName: string;
  readonly models: number;
  readonly params?: ParamValues;
  readonly modelParams?: readonly ParamValues[];
}

/**
 * A fused bf16 merge over n elements: `inputs[i]` points at model i's bf16 values in the arena `a` (the base
 * model's last, when the method takes one), `out` at the bf16 result.
 */
export type Bf16Kernel = (
  a: import("../wasm/arena.js").WasmArena,
  inputs: readonly number[],
  out: number,
  n: number,
) => void;

/** What a streaming merge knows before seeing data: everything in MergeInput but the tensors. */
export interface StreamInput {
  readonly tensorName: string;
  /** Elements per input (all inputs share one shape in streaming mode). */
  readonly numel: number;
  readonly shape: readonly number[];
  readonly models: number;
  readonly hasBase: boolean;
  readonly params?: ParamValues;
  readonly modelParams?: readonly ParamValues[];
  readonly seed?: number;
  /**
   * The engine will pass chunks as views into this thread's WebAssembly arena (src/wasm/arena.ts), none longer
   * than this many elements: the stream may then run on the SIMD kernels. Absent: plain arrays.
   */
  readonly wasmChunk?: number;
}

/** A chunk of every input at the same element range [start, start + length). */
export interface StreamChunk {
  readonly start: number;
  readonly models: readonly Float32Array[];
  readonly base: Float32Array | undefined;
  /**
   * The same range as raw bfloat16 bits, when every input is bf16 and no rounding applies (views into the wasm
   * arena; only for streams that set `rawBf16`, and then `models` / `base` may be left undecoded).
   */
  readonly bf16?: { readonly models: readonly Uint16Array[]; readonly base: Uint16Array };
}

/** A merge run as passes over chunks; see {@link MergeMethodSpec.streaming}. */
export interface StreamingMerge {
  /**
   * Statistic passes before the output pass (0: emit straight away). It may change in `sample` and grow in
   * `endPass` (a pass that finds its shortcut failed asks for more), so the engine reads it after each pass.
   */
  readonly passes: number;
  /**
   * Elements this stream would like to see, spread over the tensor (sample.ts), before pass 0; 0 or absent: none.
   * The stream works without it too (in more passes).
   */
  readonly sampleSize?: number;
  /** The sample: the runs at sampleStarts(numel, sampleSize), concatenated (`start` is 0). */
  sample?(chunk: StreamChunk): void;
  /**
   * This stream reads `StreamChunk.bf16` whenever it is given, so the engine may skip decoding the float32
   * `models` / `base` (whose contents are then unspecified, their lengths still right).
   */
  readonly rawBf16?: boolean;
  /** See one chunk during statistic pass `pass`; chunks come in index order, covering the tensor once per pass. */
  observe(pass: number, chunk: StreamChunk): void;
  /** Called after each statistic pass. */
  endPass(pass: number): void;
  /** Write the output for the chunk's element range into `out` (same length as the chunk). */
  emit(chunk: StreamChunk, out: Float32Array): void;
  /**
   * Optional: emit straight into bf16 bits at arena pointer `out` (the result rounded as encodeFromF32 does), for a
   * raw bf16 chunk (`chunk.bf16` set). Returns false where it has no such form; the engine then calls `emit`.
   */
  emitBf16?(chunk: StreamChunk, out: number): boolean;
}
