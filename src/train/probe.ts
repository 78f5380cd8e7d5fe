/**
 * Linear probing: a head trained on frozen features (computed once, eval mode), as CLIP's zero-shot heads stand in
 * for task heads on FusionBench. Minibatch softmax regression with the same optimizers and schedules as `train`.
 */
import * as tf from "@tensorflow/tfjs";
import { epochOrder } from "../data/batches.js";
import type { TaskSplit } from "../data/types.js";
import { FusionError } from "../errors.js";
import { extractFeatures } from "../eval/evaluate.js";
import { applyHead } from "../nn/models/head.js";
import type { Model, Params } from "../nn/models/types.js";
import type { TrainConfig } from "./loop.js";
import { crossEntropy } from "./loss.js";
import { createOptimizer } from "./optimizers.js";
import { learningRateAt } from "./schedule.js";

/** A probe's budget: the training loop's, without frozen parts or augmentation (features are computed once). */
export type ProbeConfig = Pick<
  TrainConfig,
  "steps" | "batchSize" | "seed" | "optimizer" | "lr" | "schedule" | "warmupSteps"
>;

export interface ProbeResult {
  head: Params;
  steps: number;
  finalLoss: number;
  seconds: number;
}

let probeCounter = 0;

/** Trains `head` (initial values; not modified) on the frozen `backbone`'s features of `data`. */
export function trainProbe(
  model: Model<unknown>,
  backbone: Params,
  head: Params,
  data: TaskSplit,
  c: ProbeConfig,
  onProgress?: (step: number, steps: number, loss: number) => void,
): ProbeResult {
  if (data.count < 1) throw new FusionError("DATA_EMPTY", `task ${data.task} (${data.split}): no examples to probe`);
  const t0 = performance.now();
  const dim = model.featureDim;
  const features = tf.tensor2d(extractFeatures(model, backbone, data), [data.count, dim]);
  const labels = tf.tensor1d(data.y, "int32");
  const batch = Math.min(c.batchSize, data.count);
  const perEpoch = Math.floor(data.count / batch);
  const prefix = `probe${++probeCounter}/`;
  const vars: tf.Variable[] = [];
  const params: Record<string, tf.Variable> = {};
  for (const [name, t] of Object.entries(head)) {
    const copy = tf.tensor(t.dataSync().slice(), t.shape);
    params[name] = tf.variable(copy, true, `${prefix}${name}`);
    copy.dispose();
    vars.push(params[name]);
  }
  const opt = createOptimizer(c.optimizer);
  const schedule = { kind: c.schedule, lr: c.lr, totalSteps: c.steps, warmupSteps: c.warmupSteps };
  let order = epochOrder(data.count, c.seed, 0);
  let loss = Number.NaN;
  try {
    for (let step = 0; step < c.steps; step++) {
      const within = step % perEpoch;
      if (within === 0 && step > 0) order = epochOrder(data.count, c.seed, Math.floor(step / perEpoch));
      const idx = tf.tensor1d(Int32Array.from(order.subarray(within * batch, within * batch + batch)), "int32");
      const { value, grads } = tf.variableGrads(
        () =>
          crossEntropy(
            applyHead(params, tf.gather(features, idx)) as tf.Tensor2D,
            tf.gather(labels, idx) as tf.Tensor1D,
          ),
        vars,
      );
      opt.step(learningRateAt(schedule, step), grads, vars);
      tf.dispose(grads);
      idx.dispose();
      loss = value.dataSync()[0]!;
      value.dispose();
      if (!Number.isFinite(loss))
        throw new FusionError("TRAINING_DIVERGED", `probe for ${data.task}: loss became ${loss} at step ${step + 1}`);
      onProgress?.(step + 1, c.steps, loss);
    }
    const out: Params = {};
    for (const [name, v] of Object.entries(params)) out[name] = v.clone();
    return { head: out, steps: c.steps, finalLoss: loss, seconds: (performance.now() - t0) / 1000 };
  } finally {
    opt.dispose();
    tf.dispose(vars);
    tf.dispose([features, labels]);
  }
}
