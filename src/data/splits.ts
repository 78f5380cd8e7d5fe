/**
 * A task's train / val / test examples, ready for a model. The validation set is carved out of Fashion-MNIST's
 * training images by a seeded permutation of their indices (the same partition for every task, so `val` never
 * overlaps any task's `train`); examples of classes the task drops are removed, the task's transform is applied and
 * pixels are normalised: x = (p/255 - 0.2860) / 0.3530, NHWC with one channel.
 *
 * Only the raw images and the partitions are cached; each call derives fresh arrays (0.1-0.2 s for 55,000
 * examples), which the caller owns.
 */
import { FusionError } from "../errors.js";
import { loadFashionMnist } from "./fashion-mnist.js";
import { checkInteger, permutation, seededGenerator } from "./random.js";
import { getTask } from "./tasks.js";
import type { ImageSet, SplitName, TaskDef, TaskSplit } from "./types.js";

export const FMNIST_MEAN = 0.286;
export const FMNIST_STD = 0.353;

/** Stream number of the train / val partition (epoch orders use streams 0, 1, 2, ... of their seed). */
const VAL_STREAM = -1;

/** The normalised value of each byte: (p/255 - mean) / std, as float32. */
export const NORMALISE: Float32Array = (() => {
  const t = new Float32Array(256);
  for (let p = 0; p < 256; p++) t[p] = (p / 255 - FMNIST_MEAN) / FMNIST_STD;
  return t;
})();

export interface TaskSplitOptions {
  /** Training images held out as the validation split (default 5000). */
  valSize?: number;
  /** Which training images become validation images (default 0). */
  seed?: number;
  /** Keep only the first `limit` examples of the split, after dropping the task's excluded classes. */
  limit?: number;
  /** Fashion-MNIST directory (default: the search path of `findFashionMnistDir`). */
  dir?: string;
}

export interface TrainValPartition {
  /** Indices into the raw training set, ascending. */
  train: Uint32Array;
  val: Uint32Array;
}

const partitions = new Map<string, TrainValPartition>();

/**
 * The train / val partition of `count` training images: the first `valSize` entries of a seeded permutation are
 * val; both lists are sorted ascending. Cached; treat the arrays as read-only.
 */
export function trainValPartition(count: number, valSize: number, seed: number): TrainValPartition {
  checkInteger(count, "count", 1, 2 ** 31);
  checkInteger(valSize, "valSize", 0, count - 1);
  checkInteger(seed, "seed", 0, 0xffffffff);
  const key = `${count}:${valSize}:${seed}`;
  const hit = partitions.get(key);
  if (hit !== undefined) return hit;
  const order = permutation(count, seededGenerator(seed, VAL_STREAM));
  const val = order.slice(0, valSize).sort();
  const train = order.slice(valSize).sort();
  const part = { train, val };
  partitions.set(key, part);
  return part;
}

/** One task's split as normalised NHWC floats and mapped labels. */
export function loadTaskSplit(task: TaskDef | string, split: SplitName, options: TaskSplitOptions = {}): TaskSplit {
  const def = typeof task === "string" ? getTask(task) : task;
  if (split !== "train" && split !== "val" && split !== "test") {
    throw new FusionError("INVALID_ARGUMENT", `split must be 'train', 'val' or 'test', got '${String(split)}'`, {
      key: "split",
    });
  }
  const valSize = checkInteger(options.valSize ?? 5000, "valSize", 0, 2 ** 31);
  const seed = checkInteger(options.seed ?? 0, "seed", 0, 0xffffffff);
  const limit =
    options.limit === undefined ? Number.POSITIVE_INFINITY : checkInteger(options.limit, "limit", 1, 2 ** 31);
  const raw = loadFashionMnist(split === "test" ? "test" : "train", options.dir);
  let rows: Uint32Array | undefined;
  if (split !== "test") {
    const part = trainValPartition(raw.count, valSize, seed);
    rows = split === "val" ? part.val : part.train;
  }
  return deriveSplit(def, split, raw, rows, limit);
}

/**
 * Applies `task` to the raw examples `rows` of `raw` (all of them when undefined), dropping excluded classes and
 * keeping at most `limit` examples.
 */
export function deriveSplit(
  task: TaskDef,
  split: SplitName,
  raw: ImageSet,
  rows: Uint32Array | undefined,
  limit = Number.POSITIVE_INFINITY,
): TaskSplit {
  if (task.labelMap.length !== 10) {
    throw new FusionError("INVALID_ARGUMENT", `labelMap has ${task.labelMap.length} entries, expected 10`, {
      key: task.name,
    });
  }
  const candidates = rows?.length ?? raw.count;
  const kept = new Uint32Array(candidates);
  let count = 0;
  for (let i = 0; i < candidates && count < limit; i++) {
    const r = rows === undefined ? i : rows[i]!;
    if (task.labelMap[raw.labels[r]!]! >= 0) kept[count++] = r;
  }
  const pixels = raw.rows * raw.cols;
  const x = new Float32Array(count * pixels);
  const y = new Int32Array(count);
  const scratch = new Uint8Array(pixels);
  for (let i = 0; i < count; i++) {
    const r = kept[i]!;
    task.transform(raw.images.subarray(r * pixels, (r + 1) * pixels), scratch, raw.rows, raw.cols);
    const o = i * pixels;
    for (let p = 0; p < pixels; p++) x[o + p] = NORMALISE[scratch[p]!]!;
    y[i] = task.labelMap[raw.labels[r]!]!;
  }
  return { task: task.name, split, count, x, y, rows: raw.rows, cols: raw.cols, numClasses: task.numClasses };
}

/**
 * A few-shot subset: the first `perClass` examples of each label in a seeded order (fewer where a class has fewer),
 * kept in that order. Deterministic for a given split and seed.
 */
export function selectPerClass(split: TaskSplit, perClass: number, seed: number): TaskSplit {
  checkInteger(perClass, "perClass", 1, split.count);
  const order = permutation(split.count, seededGenerator(seed, 0x5107));
  const taken = new Int32Array(split.numClasses);
  const rows: number[] = [];
  for (const i of order) {
    const label = split.y[i]!;
    if (taken[label]! < perClass) {
      taken[label]!++;
      rows.push(i);
    }
  }
  const px = split.rows * split.cols;
  const x = new Float32Array(rows.length * px);
  const y = new Int32Array(rows.length);
  rows.forEach((r, k) => {
    x.set(split.x.subarray(r * px, (r + 1) * px), k * px);
    y[k] = split.y[r]!;
  });
  return { ...split, count: rows.length, x, y };
}
