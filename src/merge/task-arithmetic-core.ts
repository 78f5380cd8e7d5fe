// Generalized task arithmetic (mergekit/merge_methods/generalized_task_arithmetic.py): the shared engine of
// task_arithmetic, ties, dare_ties, dare_linear, breadcrumbs, breadcrumbs_ties, della and della_linear.
//
//   delta_i  = model_i - base                     (embeddings: all cropped to the common block, see rectify.ts)
//   delta_i  = sparsify(delta_i, density_i, ...)  (optional; rescaled by L1 ratio when `rescale`)
//   wd_i     = weight_i * delta_i
//   with consensus:  keep wd_i where sign(wd_i) == elected sign;  mixed = sum kept wd_i;
//                    divisor = sum of the kept weights, 0 -> 1
//   without:         mixed = sum wd_i;  divisor = sum weight_i, |divisor| < 1e-8 -> 1
//   mixed /= divisor (if normalize);  mixed *= lambda;  result = base + mixed
//
// Arithmetic follows mergekit's float32 order (deltas, products and the sums over models are rounded to float32
// as torch computes them), so sign elections match mergekit bit for bit. Memory: one float32 scratch delta and
// one byte mask per sparsified model; the deltas themselves are recomputed in the final pass, not stored.
//
// `int8_mask` only changes the dtype of mergekit's intermediate mask; it has no numeric effect and is accepted
// for config compatibility.

import { WASM_MAX_MODELS, wasmFor } from "../wasm/arena.js";
import type { ConsensusMethod } from "./consensus.js";
import { copyResult, defineMethod, type MergeContext } from "./define.js";
import { bool, num, resolveParams } from "./params.js";
import { rectifyCommon } from "./rectify.js";
import { type SparsificationMethod, type SparsityMask, sparsityMask } from "./sparsify.js";
import { streamTaskArithmetic, streamTaskArithmeticBytes } from "./task-arithmetic-stream.js";
import type { Bf16Input, Bf16Kernel, MergeMethodSpec, MergeResult, ParamSpec, TensorData } from "./types.js";

export interface TaskArithmeticOptions {
  name: string;
  title: string;
  reference: string;
  consensus: ConsensusMethod | null;
  sparsification: SparsificationMethod | null;
  defaultNormalize: boolean;
  defaultRescale: boolean;
}

const MERGEKIT_REF = "mergekit/merge_methods/generalized_task_arithmetic.py, mergekit/sparsify.py";

/** The global parameters shared by the family. */
export function globalParams(o: TaskArithmeticOptions): ParamSpec[] {
  return [
    { name: "int8_mask", type: "boolean", default: false, description: "mergekit memory option; no numeric effect" },
    { name: "normalize", type: "boolean", default: o.defaultNormalize, description: "divide by the sum of weights" },
    { name: "rescale", type: "boolean", default: o.defaultRescale, description: "rescale kept entries by L1 ratio" },
    { name: "lambda", type: "number", default: 1, description: "scale of the merged task vector" },
  ];
}

export function modelParams(o: TaskArithmeticOptions): ParamSpec[] {
  const res: ParamSpec[] = [
    { name: "weight", type: "number", description: "weight of this model's task vector" },
    {
      name: "density",
      type: "number",
      default: 1,
      min: 0,
      minExclusive: true,
      max: 1,
      description: "fraction of the task vector kept by sparsification",
    },
  ];
  if (o.sparsification === "magnitude_outliers") {
    res.push({
      name: "gamma",
      type: "number",
      default: 0.01,
      min: 0,
      max: 1,
      description: "fraction of the largest-magnitude entries dropped as outliers",
    });
  }
  if (o.sparsification === "della_magprune") {
    res.push({
      name: "epsilon",
      type: "number",
      default: 0.15,
      min: 0,
      max: 1,
      maxExclusive: true,
      description: "keep probabilities span density +/- epsilon by magnitude rank",
    });
  }
  return res;
}

/** Define one member of the family. */
export function defineTaskArithmetic(o: TaskArithmeticOptions): MergeMethodSpec {
  return defineMethod({
    name: o.name,
    title: o.title,
    reference: o.reference,
    mergekitRef: MERGEKIT_REF,
    base: "required",
    models: { min: 0 },
    random: o.sparsification === "random" || o.sparsification === "della_magprune",
    // Sparsification looks at the whole task vector (top-k, L1 rescale); without it every step is elementwise.
    elementwise: (_params, modelParams) =>
      o.sparsification === null ||
      modelParams.every((p) => (p.density as number | null) === null || (p.density as number) >= 1),
    parameters: globalParams(o),
    modelParameters: modelParams(o),
    run: (ctx) => runTaskArithmetic(ctx, o),
    streaming: (input) => streamTaskArithmetic(o, input),
    streamingBytes: (input, chunk) => streamTaskArithmeticBytes(o, input, chunk),
    wasmBf16: (input) => bf16TaskArithmetic(o, input),
  });
}

/**
 * The fused bf16 form (bf16 models and base in, bf16 out) for three dense task vectors combined by sum (task
 * arithmetic; the sparsified members with every density >= 1): combineSum's wasm kernel, reading and writing bf16.
 */
function bf16TaskArithmetic(o: TaskArithmeticOptions, input: Bf16Input): Bf16Kernel | undefined {
  if (o.consensus !== null || input.models !== 3) return undefined;
  const where = { method: o.name, tensor: input.tensorName };
  const params = resolveParams(globalParams(o), input.params, where);
  const mps = [0, 1, 2].map((i) => resolveParams(modelParams(o), input.modelParams?.[i], { ...where, model: i }));
  if (o.sparsification !== null && !mps.every((p) => p.density === null || (p.density as number) >= 1))
    return undefined;
  const w = mps.map((p) => Math.fround(num(p, "weight")));
  let divisor = 0;
  for (const wi of w) divisor = Math.fround(divisor + wi);
  if (Math.abs(divisor) < 1e-8) divisor = 1;
  const normalize = +bool(params, "normalize");
  const lambda = Math.fround(num(params, "lambda"));
  return (a, inputs, out, n) => {
    const table = a.scratch; // records { x, keep: 0 (all), scale: 1, w }
    const u = a.u32(table, 12);
    const f = a.f32(table, 12);
    for (let i = 0; i < 3; i++) {
      u[4 * i] = inputs[i]!;
      u[4 * i + 1] = 0;
      f[4 * i + 2] = 1;
      f[4 * i + 3] = w[i]!;
    }
    a.k.ta_sum3_bf16_out(inputs[3]!, table, normalize, divisor, lambda, out, n);
  };
}

function runTaskArithmetic(ctx: MergeContext, o: TaskArithmeticOptions): MergeResult {
  const nModels = ctx.models.length;
  if (nModels === 0) return copyResult(ctx.base!);
  const [base, ...models] = rectifyCommon(ctx, [ctx.base!, ...ctx.models]) as [TensorData, ...TensorData[]];
  const b = base.data;
  const n = b.length;
  const xs = models.map((m) => m.data);
  const w = ctx.modelParams.map((p) => Math.fround(num(p, "weight")));

  // Sparsify each task vector: a keep-mask and a rescale factor per model.
  const masks: SparsityMask[] = xs.map(() => ({ keep: null, scale: 1 }));
  if (o.sparsification !== null) {
    const rescaleNorm = bool(ctx.params, "rescale") ? "l1" : null;
    let delta: Float32Array | undefined;
    for (let i = 0; i < nModels; i++) {
      const p = ctx.modelParams[i]!;
      const density = num(p, "density");
      if (density >= 1) continue;
      delta ??= new Float32Array(n);
      const x = xs[i]!;
      for (let j = 0; j < n; j++) delta[j] = x[j]! - b[j]!;
      masks[i] = sparsityMask(delta, {
        method: o.sparsification,
        density,
        gamma: p.gamma as number | undefined,
        epsilon: p.epsilon as number | undefined,
        rescaleNorm,
        shape: base.shape,
        masks: ctx.masks,
        modelIndex: i,
        where: ctx,
      });
    }
  }

  const normalize = bool(ctx.params, "normalize");
  const lambda = Math.fround(num(ctx.params, "lambda"));
  const keeps = masks.map((m) => m.keep);
  const scales = masks.map((m) => m.scale);
  const out = ctx.out !== undefined && ctx.out.length === n ? ctx.out : new Float32Array(n);
  if (o.consensus !== null) combineConsensus(b, xs, keeps, scales, w, o.consensus === "count", normalize, lambda, out);
  else combineSum(b, xs, keeps, scales, w, normalize, lambda, out);
  return { data: out, shape: [...base.shape] };
}

// The combining step runs block by block, one simple loop per model and step, so the per-block scratch stays in
// cache and every loop is monomorphic. Float32Array stores round each step to float32 exactly as the
// element-at-a-time formulation (Math.fround after every operation) does, so results are bit-identical.
const BLOCK = 4096;

/** out[j] = fround(fround(fround(x - b) * scale) * w) for kept entries, +-0 (0 * w) for dropped ones. */
function weightedDelta(
  x: Float32Array,
  b: Float32Array,
  keep: Uint8Array | null,
  scale: number,
  w: number,
  start: number,
  len: number,
  out: Float32Array,
): void {
  if (keep === null && scale === 1) {
    for (let j = 0; j < len; j++) out[j] = Math.fround(x[start + j]! - b[start + j]!) * w;
  } else if (keep === null) {
    for (let j = 0; j < len; j++) out[j] = Math.fround(Math.fround(x[start + j]! - b[start + j]!) * scale) * w;
  } else {
    for (let j = 0; j < len; j++) {
      const d = keep[start + j] === 1 ? Math.fround(Math.fround(x[start + j]! - b[start + j]!) * scale) : 0;
      out[j] = d * w;
    }
  }
}

/** mixed[j] = fround(mixed[j] + fround(fround(x - b) * w)) */
function addWeightedDelta(
  x: Float32Array,
  b: Float32Array,
  w: number,
  start: number,
  len: number,
  mixed: Float32Array,
): void {
  for (let j = 0; j < len; j++) mixed[j] = mixed[j]! + Math.fround(Math.fround(x[start + j]! - b[start + j]!) * w);
}

export function combineConsensus(
  b: Float32Array,
  xs: readonly Float32Array[],
  keeps: readonly (Uint8Array | null)[],
  scales: readonly number[],
  w: readonly number[],
  byCount: boolean,
  normalize: boolean,
  lambda: number,
  out: Float32Array,
): void {
  const k = xs.length;
  const n = b.length;
  const wasm = !byCount && k <= WASM_MAX_MODELS ? wasmFor(b, out, ...xs, ...keeps) : null;
  if (wasm !== null) {
    // Exact element-at-a-time semantics in SIMD lanes (selects instead of branches), finite or not.
    const table = wasm.modelTable(xs, keeps, scales, w);
    if (k === 3) wasm.k.ta_consensus3(b.byteOffset, table, +normalize, lambda, out.byteOffset, n);
    else wasm.k.ta_consensus(b.byteOffset, table, k, +normalize, lambda, out.byteOffset, n, table + 16 * k);
    return;
  }
  const wd = xs.map(() => new Float32Array(BLOCK));
  const vote = new Float32Array(BLOCK);
  const mixed = new Float32Array(BLOCK);
  const divisor = new Float32Array(BLOCK);
  const sign = new Float32Array(BLOCK);
  for (let start = 0; start < n; start += BLOCK) {
    const len = Math.min(BLOCK, n - start);
    vote.fill(0);
    mixed.fill(0);
    divisor.fill(0);
    // Fast path: branch-free (kept and dropped entries, + and - signs interleave unpredictably). Masked-out
    // entries become 0 * v = +-0, which neither votes differently nor is ever selected; valid only while every
    // weighted delta is finite, which a finite vote proves (inf or NaN anywhere would make it non-finite).
    for (let i = 0; i < k; i++) {
      const v = wd[i]!;
      const keep = keeps[i]!;
      if (!byCount && keep !== null && scales[i] === 1) {
        maskedDeltaVote(xs[i]!, b, keep, w[i]!, start, len, v, vote); // the common TIES / DARE case, one pass
        continue;
      }
      weightedDeltaMasked(xs[i]!, b, keep, scales[i]!, w[i]!, start, len, v);
      if (byCount) for (let j = 0; j < len; j++) vote[j] = vote[j]! + Math.sign(v[j]!);
      else for (let j = 0; j < len; j++) vote[j] = vote[j]! + v[j]!;
    }
    // A sum vote is non-finite whenever a weighted delta is (inf and NaN propagate); a sign count is not.
    let finite = true;
    if (byCount) for (let i = 0; i < k && finite; i++) finite = allFinite(wd[i]!, len);
    else finite = allFinite(vote, len);
    if (finite) {
      for (let j = 0; j < len; j++) sign[j] = 2 * +(vote[j]! >= 0) - 1;
      for (let i = 0; i < k; i++) {
        const v = wd[i]!;
        const wi = w[i]!;
        for (let j = 0; j < len; j++) {
          const x = v[j]!;
          const sel = +(x * sign[j]! > 0); // x has the elected sign (zeros never do)
          mixed[j] = mixed[j]! + x * sel;
          divisor[j] = divisor[j]! + wi * sel;
        }
      }
    } else {
      // Exact element-at-a-time semantics when a delta is inf or NaN.
      vote.fill(0);
      mixed.fill(0);
      divisor.fill(0);
      for (let i = 0; i < k; i++) {
        const v = wd[i]!;
        weightedDelta(xs[i]!, b, keeps[i]!, scales[i]!, w[i]!, start, len, v);
        if (byCount) for (let j = 0; j < len; j++) vote[j] = vote[j]! + Math.sign(v[j]!);
        else for (let j = 0; j < len; j++) vote[j] = vote[j]! + v[j]!;
      }
      for (let i = 0; i < k; i++) {
        const v = wd[i]!;
        const wi = w[i]!;
        for (let j = 0; j < len; j++) {
          const x = v[j]!;
          if (vote[j]! >= 0 ? x > 0 : x < 0) {
            mixed[j] = mixed[j]! + x;
            divisor[j] = divisor[j]! + wi;
          }
        }
      }
    }
    for (let j = 0; j < len; j++) {
      let m = mixed[j]!;
      if (normalize) {
        const d = divisor[j]!;
        m = Math.fround(m / (d === 0 ? 1 : d));
      }
      if (lambda !== 1) m = Math.fround(m * lambda);
      out[start + j] = b[start + j]! + m;
    }
  }
}

function allFinite(v: Float32Array, len: number): boolean {
  let acc = 0;
  for (let j = 0; j < len; j++) acc += v[j]! * 0; // 0 for finite, NaN for inf or NaN
  return acc === 0;
}

/** v = masked weighted delta (as weightedDeltaMasked with scale 1), and vote += v, in one pass. */
function maskedDeltaVote(
  x: Float32Array,
  b: Float32Array,
  keep: Uint8Array,
  w: number,
  start: number,
  len: number,
  v: Float32Array,
  vote: Float32Array,
): void {
  for (let j = 0; j < len; j++) {
    const d = Math.fround(Math.fround(Math.fround(x[start + j]! - b[start + j]!) * w) * keep[start + j]!);
    v[j] = d;
    vote[j] = vote[j]! + d;
  }
}

/** As weightedDelta, masking by multiplication (0 * v) instead of a branch. */
function weightedDeltaMasked(
  x: Float32Array,
  b: Float32Array,
  keep: Uint8Array | null,
  scale: number,
  w: number,
  start: number,
  len: number,
  out: Float32Array,
): void {
  if (keep === null) {
    weightedDelta(x, b, null, scale, w, start, len, out);
    return;
  }
  if (scale === 1) {
    for (let j = 0; j < len; j++)
      out[j] = Math.fround(Math.fround(x[start + j]! - b[start + j]!) * w) * keep[start + j]!;
  } else {
    for (let j = 0; j < len; j++) {
      out[j] = Math.fround(Math.fround(Math.fround(x[start + j]! - b[start + j]!) * scale) * w) * keep[start + j]!;
    }
  }
}

export function combineSum(
  b: Float32Array,
  xs: readonly Float32Array[],
  keeps: readonly (Uint8Array | null)[],
  scales: readonly number[],
  w: readonly number[],
  normalize: boolean,
  lambda: number,
  out: Float32Array,
): void {
  const k = xs.length;
  const n = b.length;
  let divisor = 0;
  for (let i = 0; i < k; i++) divisor = Math.fround(divisor + w[i]!);
  if (Math.abs(divisor) < 1e-8) divisor = 1;
  const wasm = k <= WASM_MAX_MODELS ? wasmFor(b, out, ...xs, ...keeps) : null;
  if (wasm !== null) {
    const table = wasm.modelTable(xs, keeps, scales, w);
    if (k === 3) wasm.k.ta_sum3(b.byteOffset, table, +normalize, divisor, lambda, out.byteOffset, n);
    else wasm.k.ta_sum(b.byteOffset, table, k, +normalize, divisor, lambda, out.byteOffset, n);
    return;
  }
  const wd = new Float32Array(BLOCK);
  const mixed = new Float32Array(BLOCK);
  for (let start = 0; start < n; start += BLOCK) {
    const len = Math.min(BLOCK, n - start);
    mixed.fill(0);
    for (let i = 0; i < k; i++) {
      const keep = keeps[i]!;
      if (keep === null && scales[i] === 1) {
        addWeightedDelta(xs[i]!, b, w[i]!, start, len, mixed); // the dense case in one pass
        continue;
      }
      weightedDelta(xs[i]!, b, keep, scales[i]!, w[i]!, start, len, wd);
      // Dropped entries are skipped, not added as zeros (adding +0 would flip a -0 sum).
      if (keep === null) for (let j = 0; j < len; j++) mixed[j] = mixed[j]! + wd[j]!;
      else for (let j = 0; j < len; j++) if (keep[start + j] === 1) mixed[j] = mixed[j]! + wd[j]!;
    }
    for (let j = 0; j < len; j++) {
      let m = mixed[j]!;
      if (normalize) m = Math.fround(m / divisor);
      if (lambda !== 1) m = Math.fround(m * lambda);
      out[start + j] = b[start + j]! + m;
    }
  }
}
