/** Data contracts shared by the dataset readers, the task suites and batching. */

/** A split of 28x28 grey images as stored in the IDX files: `images` is count*28*28 bytes, `labels` count bytes. */
export interface ImageSet {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  rows: number;
  cols: number;
}

/** One task: a pixel transform and a map from Fashion-MNIST classes to the task's labels. */
export interface TaskDef {
  name: string;
  description: string;
  numClasses: number;
  classNames: string[];
  /** Writes the transformed rows*cols image into `out` (never modifies `src`). */
  transform(src: Uint8Array, out: Uint8Array, rows: number, cols: number): void;
  /** Length 10: the task label of each Fashion-MNIST class, -1 where the class is not part of the task. */
  labelMap: Int16Array;
}

export type SplitName = "train" | "val" | "test";

/** A task's examples, ready for a model: normalised NHWC floats and integer labels. */
export interface TaskSplit {
  task: string;
  split: SplitName;
  count: number;
  /** count x rows x cols x 1, normalised ((p/255 - mean) / std) after the task's transform. */
  x: Float32Array;
  y: Int32Array;
  rows: number;
  cols: number;
  numClasses: number;
}
