// Sparsification of task vectors (mergekit/sparsify.py): which entries of a delta survive, and by how much the
// survivors are rescaled. Used by ties / dare_* / breadcrumbs* / della* through task-arithmetic-core.ts.
//
//  magnitude           keep the k = int(density * numel) largest |x| (TIES); k = 0 is an error, as in mergekit
//  random              keep each entry with probability `density` (DARE's Bernoulli drop)
//  magnitude_outliers  drop the int(gamma * numel) largest |x| and enough of the smallest to keep
//                      int(density * numel) (Model Breadcrumbs); see the n_top = 0 note below
//  della_magprune      keep with probability (density - eps) + 2 eps * rank/(len-1), rank of |x| within its row
//                      (dim 1; a 1-D tensor is one row) (DELLA's MAGPRUNE)
//
// density >= 1 keeps everything, unscaled, for every method (mergekit returns early). Optional rescaling
// multiplies survivors by norm(x) / norm(x * mask) for the chosen norm (l1 for the `rescale` option of the
// task-arithmetic family - NOT 1/density); it is skipped when either norm is below 1e-7.
//
// Ties in |x| at the selection boundary are broken by position (the lower flat index counts as larger for
// top-k, as in a stable descending sort; as smaller for the outlier window, as in a stable ascending sort).

import { FusionError } from "../errors.js";
import { lineRankNorm, magnitudeWindowMask, maxAbs, topKMagnitudeMask } from "../tensor/kernels.js";
import type { MaskSource } from "./types.js";

export type SparsificationMethod = "magnitude" | "random" | "magnitude_outliers" | "della_magprune";
export type RescaleNorm = "l1" | "l2" | "linf";

export interface SparsifyOptions {
  method: SparsificationMethod;
  /** Fraction of entries to keep, in (0, 1] (>= 1 keeps all). */
  density: number;
  /** magnitude_outliers: fraction of the largest entries to drop (mergekit's sparsify default: 0). */
  gamma?: number;
  /** della_magprune: half-width of the keep-probability range (default 0). */
  epsilon?: number;
  /** Rescale survivors to preserve this norm of the input (default: no rescaling). */
  rescaleNorm?: RescaleNorm | null;
  /** Tensor shape (della_magprune ranks within rows of dim 1); default: 1-D. */
  shape?: readonly number[];
  /** Random methods: where the keep-mask comes from, and which model's mask to draw. */
  masks?: MaskSource;
  modelIndex?: number;
  /** For error messages. */
  where?: { method: string; tensor: string };
}

/** The outcome of sparsifying one delta: keep[i] (null = keep all) and the factor applied to survivors. */
export interface SparsityMask {
  keep: Uint8Array | null;
  scale: number;
}

const RESCALE_EPS = 1e-7;

function sparsifyError(opts: SparsifyOptions, message: string, key: string): FusionError {
  const w = opts.where ?? { method: "sparsify", tensor: "?" };
  const model = opts.modelIndex === undefined ? "" : ` (model ${opts.modelIndex})`;
  return new FusionError("MERGE_INVALID", `${w.method}: ${message}${model}`, { tensor: w.tensor, key });
}

/** Mask + rescale factor for one delta. `scratch` may supply the mask array to fill (length = delta.length). */
export function sparsityMask(delta: Float32Array, opts: SparsifyOptions, scratch?: Uint8Array): SparsityMask {
  const n = delta.length;
  const density = opts.density;
  if (!(density < 1)) return { keep: null, scale: 1 };
  const keep = scratch !== undefined && scratch.length === n ? scratch : new Uint8Array(n);
  switch (opts.method) {
    case "magnitude": {
      topKMagnitudeMask(delta, magnitudeKeepCount(density, n, opts), keep);
      break;
    }
    case "magnitude_outliers": {
      const gamma = opts.gamma ?? 0;
      const target = Math.trunc(density * n);
      let nTop = Math.trunc(gamma * n);
      let nBot = n - target - nTop;
      if (nBot < 0) {
        nTop += nBot;
        nBot = 0;
      }
      // mergekit keeps sorted[n_bot:-n_top]; with n_top == 0 that Python slice is empty, so nothing survives
      // (captured by the conformance cases; the output is then the base). Reproduced deliberately.
      if (nTop <= 0) keep.fill(0);
      else magnitudeWindowMask(delta, nBot, n - nTop, keep);
      break;
    }
    case "random": {
      if (density <= 0) keep.fill(0);
      else drawMask(opts, Math.fround(density), keep);
      break;
    }
    case "della_magprune": {
      if (density <= 0) {
        keep.fill(0);
        break;
      }
      const eps = opts.epsilon ?? 0;
      if (!(density + eps < 1 && density - eps > 0)) {
        throw sparsifyError(
          opts,
          `epsilon ${eps} must keep density +/- epsilon inside (0, 1), got density ${density}`,
          "epsilon",
        );
      }
      const shape = opts.shape ?? [n];
      const outer = shape.length < 2 ? 1 : shape[0]!;
      const len = shape.length < 2 ? n : shape[1]!;
      const probs = lineRankNorm(delta, outer, len, n / Math.max(1, outer * len), new Float32Array(n));
      const lo = density - eps;
      const span = 2 * eps;
      for (let i = 0; i < n; i++) probs[i] = lo + probs[i]! * span;
      drawMask(opts, probs, keep);
      break;
    }
    default:
      throw sparsifyError(opts, `unknown sparsification method ${JSON.stringify(opts.method)}`, "method");
  }
  return { keep, scale: rescaleFactor(delta, keep, opts.rescaleNorm ?? null) };
}

/** mergekit's k = int(density * numel) for top-k; k = 0 is an error there (an assertion), and here. */
export function magnitudeKeepCount(
  density: number,
  n: number,
  opts: Pick<SparsifyOptions, "where" | "modelIndex">,
): number {
  const k = Math.trunc(density * n);
  if (k <= 0) {
    throw sparsifyError(
      opts as SparsifyOptions,
      `density ${density} keeps int(${density} * ${n}) = 0 entries of the task vector`,
      "density",
    );
  }
  return k;
}

function drawMask(opts: SparsifyOptions, probs: number | Float32Array, keep: Uint8Array): void {
  if (opts.masks === undefined) throw sparsifyError(opts, "random sparsification needs a mask source", "masks");
  opts.masks.fill(opts.modelIndex ?? 0, probs, keep);
}

/**
 * Running L1 sums of a delta and of its kept part in float64, chunk by chunk or at once: four lanes, lane j taking
 * the entries whose (global) index is j mod 4 in index order, added up as (l0 + l1) + (l2 + l3) at the end. The
 * order is fixed by the indices alone, so whole-tensor, chunked and SIMD sums are the same bits.
 */
export interface L1Sums {
  readonly before: Float64Array;
  readonly after: Float64Array;
  /** A kept entry was +inf (so the kept sum is +inf). */
  infKept: boolean;
}

export function newL1Sums(): L1Sums {
  return { before: new Float64Array(4), after: new Float64Array(4), infKept: false };
}

/**
 * Add |x| to `before` and |x| * keep to `after`, branch-free (the mask is random, a branch would mispredict);
 * x[0] has index `start` in the tensor. Infinite entries are left out of `after` (inf * 0 would be NaN) and
 * recorded in `infKept` instead, so the result equals summing the kept entries with a branch.
 */
export function addL1Sums(x: Float32Array, keep: Uint8Array, acc: L1Sums, start = 0): void {
  const be = acc.before;
  const af = acc.after;
  let infKept = false;
  const n = x.length;
  let i = 0;
  for (; i < n && ((start + i) & 3) !== 0; i++) {
    const a = Math.abs(x[i]!);
    const lane = (start + i) & 3;
    be[lane] = be[lane]! + a;
    if (a === Number.POSITIVE_INFINITY) infKept ||= keep[i] === 1;
    else af[lane] = af[lane]! + a * keep[i]!;
  }
  let b0 = be[0]!;
  let b1 = be[1]!;
  let b2 = be[2]!;
  let b3 = be[3]!;
  let a0 = af[0]!;
  let a1 = af[1]!;
  let a2 = af[2]!;
  let a3 = af[3]!;
  for (; i + 4 <= n; i += 4) {
    const v0 = Math.abs(x[i]!);
    const v1 = Math.abs(x[i + 1]!);
    const v2 = Math.abs(x[i + 2]!);
    const v3 = Math.abs(x[i + 3]!);
    b0 += v0;
    b1 += v1;
    b2 += v2;
    b3 += v3;
    if (v0 === Number.POSITIVE_INFINITY) infKept ||= keep[i] === 1;
    else a0 += v0 * keep[i]!;
    if (v1 === Number.POSITIVE_INFINITY) infKept ||= keep[i + 1] === 1;
    else a1 += v1 * keep[i + 1]!;
    if (v2 === Number.POSITIVE_INFINITY) infKept ||= keep[i + 2] === 1;
    else a2 += v2 * keep[i + 2]!;
    if (v3 === Number.POSITIVE_INFINITY) infKept ||= keep[i + 3] === 1;
    else a3 += v3 * keep[i + 3]!;
  }
  be[0] = b0;
  be[1] = b1;
  be[2] = b2;
  be[3] = b3;
  af[0] = a0;
  af[1] = a1;
  af[2] = a2;
  af[3] = a3;
  for (; i < n; i++) {
    const a = Math.abs(x[i]!);
    const lane = (start + i) & 3;
    be[lane] = be[lane]! + a;
    if (a === Number.POSITIVE_INFINITY) infKept ||= keep[i] === 1;
    else af[lane] = af[lane]! + a * keep[i]!;
  }
  acc.infKept ||= infKept;
}

/** Four lane sums added up in the fixed order (l0 + l1) + (l2 + l3). */
export function laneTotal(lanes: ArrayLike<number>): number {
  return lanes[0]! + lanes[1]! + (lanes[2]! + lanes[3]!);
}

export function l1Before(acc: L1Sums): number {
  return laneTotal(acc.before);
}

export function l1After(acc: L1Sums): number {
  return acc.infKept ? Number.POSITIVE_INFINITY : laneTotal(acc.after);
}

/** The rescale factor from norms: float32-rounded before / after, or 1 when either is below 1e-7. */
export function rescaleFromNorms(before: number, after: number): number {
  const b = Math.fround(before);
  const a = Math.fround(after);
  if (b < RESCALE_EPS || a < RESCALE_EPS) return 1;
  return Math.fround(b / a);
}

/** norm(x) / norm(x * keep) for the given norm (float32-rounded), or 1 when either is below 1e-7 or norm is null. */
export function rescaleFactor(x: Float32Array, keep: Uint8Array, norm: RescaleNorm | null): number {
  if (norm === null) return 1;
  let before = 0;
  let after = 0;
  const n = x.length;
  if (norm === "l1") {
    const acc = newL1Sums();
    addL1Sums(x, keep, acc);
    before = l1Before(acc);
    after = l1After(acc);
  } else if (norm === "l2") {
    for (let i = 0; i < n; i++) {
      const a = x[i]! * x[i]!;
      before += a;
      if (keep[i] === 1) after += a;
    }
    before = Math.sqrt(before);
    after = Math.sqrt(after);
  } else {
    before = maxAbs(x);
    for (let i = 0; i < n; i++) {
      const a = Math.abs(x[i]!);
      if (keep[i] === 1 && a > after) after = a;
    }
  }
  return rescaleFromNorms(before, after);
}

/** out[i] = keep[i] ? fround(x[i] * scale) : 0 (out may be x itself). */
export function applySparsity(
  x: Float32Array,
  m: SparsityMask,
  out: Float32Array = new Float32Array(x.length),
): Float32Array {
  const n = x.length;
  const keep = m.keep;
  const s = m.scale;
  if (keep === null) {
    if (out !== x) out.set(x);
    return out;
  }
  if (s === 1) for (let i = 0; i < n; i++) out[i] = keep[i] === 1 ? x[i]! : 0;
  else for (let i = 0; i < n; i++) out[i] = keep[i] === 1 ? x[i]! * s : 0;
  return out;
}

/** mergekit's sparsify(): the sparsified (and optionally rescaled) copy of `x`. */
export function sparsify(x: Float32Array, opts: SparsifyOptions): Float32Array {
  return applySparsity(x, sparsityMask(x, opts));
}
