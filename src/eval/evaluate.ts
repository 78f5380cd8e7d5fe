/** Evaluation of a (backbone, head) pair on a task split, and feature extraction for linear probes. */
import * as tf from "@tensorflow/tfjs";
import type { TaskSplit } from "../data/types.js";
import { FusionError } from "../errors.js";
import { applyHead } from "../nn/models/head.js";
import type { Model, Params } from "../nn/models/types.js";
import { accumulate, emptySums, finish, type Metrics } from "./metrics.js";

export interface EvalResult extends Metrics {
  task: string;
  split: string;
}

const DEFAULT_BATCH = 500;

function checkHead(head: Params, data: TaskSplit): void {
  const w = head.weight;
  if (w === undefined || w.shape[0] !== data.numClasses)
    throw new FusionError(
      "SHAPE_MISMATCH",
      `task ${data.task} has ${data.numClasses} classes but the head has ${w?.shape[0] ?? "no"} outputs`,
      { tensor: "weight" },
    );
}

/** Runs `fn` over the split in eval-mode batches of `batchSize`, with the batch's input tensor. */
function forBatches(data: TaskSplit, batchSize: number, fn: (x: tf.Tensor4D, start: number, n: number) => void): void {
  const px = data.rows * data.cols;
  for (let start = 0; start < data.count; start += batchSize) {
    const n = Math.min(batchSize, data.count - start);
    tf.tidy(() => {
      const x = tf.tensor4d(data.x.subarray(start * px, (start + n) * px), [n, data.rows, data.cols, 1]);
      fn(x, start, n);
    });
  }
}

/** Accuracy, mean loss and mean prediction entropy of `head(backbone(x))` on `data`. */
export function evaluate(
  model: Model<unknown>,
  backbone: Params,
  head: Params,
  data: TaskSplit,
  batchSize = DEFAULT_BATCH,
): EvalResult {
  checkHead(head, data);
  const sums = emptySums();
  forBatches(data, batchSize, (x, start, n) => {
    const logits = applyHead(head, model.forward(backbone, x, { training: false }).output);
    accumulate(sums, logits.dataSync() as Float32Array, data.y.subarray(start, start + n), data.numClasses);
  });
  return { task: data.task, split: data.split, ...finish(sums) };
}

/** Eval-mode features of every example: count x featureDim, row-major. */
export function extractFeatures(
  model: Model<unknown>,
  backbone: Params,
  data: TaskSplit,
  batchSize = DEFAULT_BATCH,
): Float32Array {
  const out = new Float32Array(data.count * model.featureDim);
  forBatches(data, batchSize, (x, start) => {
    const f = model.forward(backbone, x, { training: false }).output;
    out.set(f.dataSync() as Float32Array, start * model.featureDim);
  });
  return out;
}
