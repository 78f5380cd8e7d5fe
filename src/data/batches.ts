/**
 * Seeded batching: an epoch's example order, and copying a batch into caller-owned buffers that are reused from
 * batch to batch, optionally with random integer translations (data augmentation for pretraining the base model).
 */
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { FusionError } from "../errors.js";
import { checkInteger, permutation, type RandomGenerator, seededGenerator } from "./random.js";
import type { TaskSplit } from "./types.js";

/** A permutation of 0..count-1 that depends only on (count, seed, epoch). */
export function epochOrder(count: number, seed: number, epoch: number): Uint32Array {
  checkInteger(count, "count", 0, 2 ** 31);
  checkInteger(seed, "seed", 0, 0xffffffff);
  checkInteger(epoch, "epoch", 0, 2 ** 31 - 1);
  return permutation(count, seededGenerator(seed, epoch));
}

export interface Augment {
  /** Each example is shifted by integers dy, dx drawn uniformly from [-maxShift, maxShift]. */
  maxShift: number;
  /** Advanced by two draws per example; the same generator state gives the same shifts. */
  rng: RandomGenerator;
  /** Value of the pixels shifted in; default: the example's own top-left pixel (its background, whatever the task). */
  fill?: number;
}

/**
 * Copies examples `indices[start .. start + batchSize)` (fewer at the end of `indices`) of `split` into `xOut`
 * (n x rows x cols x 1) and `yOut`, and returns how many it copied. With `augment`, each image is translated by a
 * random integer offset, the uncovered pixels set to the background.
 */
export function fillBatch(
  split: TaskSplit,
  indices: ArrayLike<number>,
  start: number,
  batchSize: number,
  xOut: Float32Array,
  yOut: Int32Array,
  augment?: Augment,
): number {
  const n = Math.max(0, Math.min(batchSize, indices.length - start));
  const pixels = split.rows * split.cols;
  if (start < 0 || !Number.isInteger(start) || !Number.isInteger(batchSize) || batchSize < 1) {
    throw new FusionError("INVALID_ARGUMENT", `bad batch window start=${start} batchSize=${batchSize}`, {
      key: "batch",
    });
  }
  if (xOut.length < n * pixels || yOut.length < n) {
    throw new FusionError(
      "SHAPE_MISMATCH",
      `batch buffers hold ${xOut.length} floats / ${yOut.length} labels, need ${n * pixels} / ${n}`,
      { key: "batch" },
    );
  }
  const maxShift = augment === undefined ? 0 : checkInteger(augment.maxShift, "maxShift", 0, 2 ** 16);
  const { x, y } = split;
  for (let b = 0; b < n; b++) {
    const e = indices[start + b]!;
    if (!(e >= 0 && e < split.count)) {
      throw new FusionError("INVALID_ARGUMENT", `example index ${e} outside [0, ${split.count})`, {
        key: `${split.task}/${split.split}`,
      });
    }
    yOut[b] = y[e]!;
    const src = e * pixels;
    const dst = b * pixels;
    if (augment === undefined || maxShift === 0) {
      xOut.set(x.subarray(src, src + pixels), dst);
      continue;
    }
    const dy = uniformInt(augment.rng, -maxShift, maxShift);
    const dx = uniformInt(augment.rng, -maxShift, maxShift);
    shiftInto(x, src, xOut, dst, split.rows, split.cols, dy, dx, augment.fill ?? x[src]!);
  }
  return n;
}

/** out[r][c] = in[r - dy][c - dx] where that lies inside the image, `fill` elsewhere. */
function shiftInto(
  x: Float32Array,
  src: number,
  out: Float32Array,
  dst: number,
  rows: number,
  cols: number,
  dy: number,
  dx: number,
  fill: number,
): void {
  const c0 = Math.max(0, dx);
  const c1 = Math.min(cols, cols + dx);
  for (let r = 0; r < rows; r++) {
    const o = dst + r * cols;
    const sr = r - dy;
    if (sr < 0 || sr >= rows || c0 >= c1) {
      for (let c = 0; c < cols; c++) out[o + c] = fill;
      continue;
    }
    const s = src + sr * cols - dx;
    for (let c = 0; c < c0; c++) out[o + c] = fill;
    for (let c = c0; c < c1; c++) out[o + c] = x[s + c]!;
    for (let c = c1; c < cols; c++) out[o + c] = fill;
  }
}
