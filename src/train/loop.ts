/**
 * The training loop: a backbone (any `Model`) and a linear head on one task split, trained with a step optimizer and
 * a learning-rate schedule, seeded and deterministic (same seed and backend -> identical weights). Either part can be
 * frozen: fine-tuning trains the backbone under a fixed head, pretraining trains both.
 */
import * as tf from "@tensorflow/tfjs";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { epochOrder, fillBatch } from "../data/batches.js";
import type { TaskSplit } from "../data/types.js";
import { FusionError } from "../errors.js";
import { applyHead } from "../nn/models/head.js";
import type { Model, Params } from "../nn/models/types.js";
import { crossEntropy } from "./loss.js";
import { createOptimizer, type OptimizerOptions } from "./optimizers.js";
import { learningRateAt, type ScheduleKind } from "./schedule.js";

export interface TrainConfig {
  steps: number;
  batchSize: number;
  seed: number;
  optimizer: OptimizerOptions;
  lr: number;
  schedule: ScheduleKind;
  warmupSteps: number;
  minLr?: number;
  /** Random translations of up to this many pixels (0: none). */
  augmentShift?: number;
  trainBackbone: boolean;
  trainHead: boolean;
}

export interface TrainProgress {
  step: number;
  steps: number;
  loss: number;
  lr: number;
  seconds: number;
}

export interface TrainInput {
  model: Model<unknown>;
  backbone: Params;
  head: Params;
  data: TaskSplit;
  config: TrainConfig;
  onProgress?: (p: TrainProgress) => void;
}

export interface TrainResult {
  /** New tensors owned by the caller (the inputs are left as they were). */
  backbone: Params;
  head: Params;
  steps: number;
  /** Mean training loss over each tenth of the run. */
  lossCurve: number[];
  finalLoss: number;
  seconds: number;
}

let runCounter = 0;

/** A variable with a buffer of its own (so the fused optimizer may update it in place). */
function ownVariable(value: tf.Tensor, trainable: boolean, name: string): tf.Variable {
  const copy = tf.tensor(value.dataSync().slice(), value.shape, value.dtype);
  const v = tf.variable(copy, trainable, name);
  copy.dispose();
  return v;
}

export function validateTrainConfig(c: TrainConfig): void {
  const bad = (key: string, why: string) => new FusionError("INVALID_ARGUMENT", `${key}: ${why}`, { key });
  if (!Number.isInteger(c.steps) || c.steps < 1) throw bad("steps", `must be a positive integer, got ${c.steps}`);
  if (!Number.isInteger(c.batchSize) || c.batchSize < 1)
    throw bad("batch-size", `must be a positive integer, got ${c.batchSize}`);
  if (!(c.lr > 0) || !Number.isFinite(c.lr)) throw bad("lr", `must be a positive number, got ${c.lr}`);
  if (!Number.isInteger(c.warmupSteps) || c.warmupSteps < 0)
    throw bad("warmup", `must be a non-negative integer, got ${c.warmupSteps}`);
  if (!c.trainBackbone && !c.trainHead) throw bad("train", "nothing to train: backbone and head both frozen");
}

export function train(input: TrainInput): TrainResult {
  const { model, data, config: c } = input;
  validateTrainConfig(c);
  const batch = Math.min(c.batchSize, data.count);
  if (batch < 1) throw new FusionError("DATA_EMPTY", `task ${data.task} (${data.split}): no examples to train on`);
  const prefix = `train${++runCounter}/`;
  const trainable = new Set(model.params.filter((p) => p.trainable).map((p) => p.name));
  const backbone: Record<string, tf.Tensor> = {};
  const head: Record<string, tf.Tensor> = {};
  const vars: tf.Variable[] = [];
  const buffers = new Map<string, tf.Variable>();
  for (const [name, t] of Object.entries(input.backbone)) {
    if (!c.trainBackbone) backbone[name] = t;
    else if (trainable.has(name)) {
      const v = ownVariable(t, true, `${prefix}b/${name}`);
      vars.push(v);
      backbone[name] = v;
    } else {
      const v = ownVariable(t, false, `${prefix}buf/${name}`);
      buffers.set(name, v);
      backbone[name] = v;
    }
  }
  for (const [name, t] of Object.entries(input.head)) {
    if (!c.trainHead) head[name] = t;
    else {
      const v = ownVariable(t, true, `${prefix}h/${name}`);
      vars.push(v);
      head[name] = v;
    }
  }
  const opt = createOptimizer(c.optimizer);
  const [rows, cols] = [data.rows, data.cols];
  const xbuf = new Float32Array(batch * rows * cols);
  const ybuf = new Int32Array(batch);
  const perEpoch = Math.floor(data.count / batch);
  const rng = xoroshiro128plus(c.seed ^ 0x5eed);
  const schedule = { kind: c.schedule, lr: c.lr, totalSteps: c.steps, warmupSteps: c.warmupSteps, minLr: c.minLr };
  const curve: number[] = [];
  let bucketSum = 0;
  let bucketN = 0;
  let loss = Number.NaN;
  const t0 = performance.now();
  let order = epochOrder(data.count, c.seed, 0);
  try {
    for (let step = 0; step < c.steps; step++) {
      const epoch = Math.floor(step / perEpoch);
      const within = step % perEpoch;
      if (within === 0 && step > 0) order = epochOrder(data.count, c.seed, epoch);
      fillBatch(
        data,
        order,
        within * batch,
        batch,
        xbuf,
        ybuf,
        c.augmentShift ? { maxShift: c.augmentShift, rng } : undefined,
      );
      const lr = learningRateAt(schedule, step);
      let newBuffers: Params | undefined;
      const x = tf.tensor4d(xbuf, [batch, rows, cols, 1]);
      const y = tf.tensor1d(ybuf, "int32");
      const { value, grads } = tf.variableGrads(() => {
        const r = model.forward(backbone, x, { training: true });
        if (r.buffers !== undefined && buffers.size > 0) {
          for (const t of Object.values(r.buffers)) tf.keep(t);
          newBuffers = r.buffers;
        }
        return crossEntropy(applyHead(head, r.output) as tf.Tensor2D, y);
      }, vars);
      tf.dispose([x, y]);
      opt.step(lr, grads, vars);
      tf.dispose(grads);
      if (newBuffers !== undefined) {
        for (const [name, t] of Object.entries(newBuffers)) buffers.get(name)?.assign(t);
        tf.dispose(newBuffers);
      }
      loss = value.dataSync()[0]!;
      value.dispose();
      if (!Number.isFinite(loss))
        throw new FusionError("TRAINING_DIVERGED", `task ${data.task}: loss became ${loss} at step ${step + 1}`);
      bucketSum += loss;
      bucketN++;
      if (Math.floor(((step + 1) * 10) / c.steps) > Math.floor((step * 10) / c.steps) || step + 1 === c.steps) {
        curve.push(bucketSum / bucketN);
        bucketSum = 0;
        bucketN = 0;
      }
      input.onProgress?.({ step: step + 1, steps: c.steps, loss, lr, seconds: (performance.now() - t0) / 1000 });
    }
    const outBackbone: Params = {};
    for (const [name, t] of Object.entries(backbone)) outBackbone[name] = t.clone();
    const outHead: Params = {};
    for (const [name, t] of Object.entries(head)) outHead[name] = t.clone();
    return {
      backbone: outBackbone,
      head: outHead,
      steps: c.steps,
      lossCurve: curve,
      finalLoss: loss,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    opt.dispose();
    tf.dispose(vars);
    tf.dispose([...buffers.values()]);
  }
}
