/**
 * `fusionkit train` as a library function: build or load a backbone and head, train on a task's train split,
 * write the checkpoint pair (backbone + head, each with a sidecar), report validation metrics.
 */
import { loadTaskSplit } from "../data/splits.js";
import { getTask } from "../data/tasks.js";
import { FusionError } from "../errors.js";
import { type EvalResult, evaluate } from "../eval/evaluate.js";
import { headParams, initHead } from "../nn/models/head.js";
import { modelFromConfig } from "../nn/models/registry.js";
import type { Model, Params } from "../nn/models/types.js";
import { initNN } from "../nn/select.js";
import { readCheckpoint, readSidecar, writeCheckpoint } from "./checkpoint.js";
import { type TrainConfig, type TrainProgress, train } from "./loop.js";

export interface TrainRunOptions extends Omit<TrainConfig, "trainBackbone" | "trainHead"> {
  task: string;
  /** Output backbone checkpoint (.safetensors); the head goes beside it as `<name>.head.safetensors`. */
  out: string;
  /** A new model of this architecture (with `config`), unless `init` gives a backbone checkpoint. */
  arch?: string;
  config?: Record<string, unknown>;
  /** Start from this backbone checkpoint (its sidecar names the architecture). */
  init?: string;
  /** Start from this head checkpoint (a fresh head otherwise). */
  head?: string;
  freeze?: "backbone" | "head";
  /** Use only the first N train examples. */
  limit?: number;
  onProgress?: (p: TrainProgress) => void;
}

export interface TrainRunResult {
  out: string;
  headOut: string;
  steps: number;
  seconds: number;
  finalLoss: number;
  val: EvalResult;
}

export function headPathFor(out: string): string {
  return out.endsWith(".safetensors")
    ? `${out.slice(0, -".safetensors".length)}.head.safetensors`
    : `${out}.head.safetensors`;
}

/** The backbone model a checkpoint's sidecar describes, with its weights. */
export function loadBackbone(path: string): { model: Model; params: Params } {
  const s = readSidecar(path);
  if (s.kind !== "backbone" || typeof s.arch !== "string")
    throw new FusionError("CHECKPOINT_INVALID", "not a backbone checkpoint (sidecar kind/arch)", { file: path });
  const model = modelFromConfig({ arch: s.arch, config: (s.config ?? {}) as Record<string, unknown> });
  return { model, params: readCheckpoint(path, model.params)!.params };
}

/** A head checkpoint, checked against the feature width and class count it must have. */
export function loadHead(path: string, featureDim: number, numClasses: number): Params {
  const s = readSidecar(path);
  if (s.kind !== "head")
    throw new FusionError("CHECKPOINT_INVALID", `not a head checkpoint (sidecar kind ${s.kind})`, { file: path });
  if (s.numClasses !== undefined && s.numClasses !== numClasses)
    throw new FusionError(
      "SHAPE_MISMATCH",
      `head has ${s.numClasses} outputs${s.task ? ` (trained for ${s.task})` : ""} but the task has ${numClasses} classes`,
      { file: path },
    );
  return readCheckpoint(path, headParams(featureDim, numClasses))!.params;
}

export async function runTrain(o: TrainRunOptions): Promise<TrainRunResult> {
  if (!o.out.endsWith(".safetensors"))
    throw new FusionError("INVALID_ARGUMENT", `out: expected a .safetensors path, got '${o.out}'`, { key: "out" });
  const task = getTask(o.task);
  await initNN({ log: null });
  let model: Model;
  let backbone: Params;
  if (o.init !== undefined) ({ model, params: backbone } = loadBackbone(o.init));
  else {
    if (o.arch === undefined)
      throw new FusionError("INVALID_ARGUMENT", "arch: give --arch (or --init CHECKPOINT)", { key: "arch" });
    model = modelFromConfig({ arch: o.arch, config: o.config ?? {} });
    backbone = model.init(o.seed);
  }
  const head =
    o.head !== undefined
      ? loadHead(o.head, model.featureDim, task.numClasses)
      : initHead(model.featureDim, task.numClasses, o.seed + 1);
  const data = loadTaskSplit(task, "train", { seed: o.seed, limit: o.limit });
  const val = loadTaskSplit(task, "val", {
    seed: o.seed,
    limit: o.limit === undefined ? undefined : Math.ceil(o.limit / 4),
  });
  const { task: _t, out, arch: _a, config: _c, init, head: headIn, freeze, limit, onProgress, ...budget } = o;
  const r = train({
    model,
    backbone,
    head,
    data,
    config: { ...budget, trainBackbone: freeze !== "backbone", trainHead: freeze !== "head" },
    onProgress,
  });
  const metrics = evaluate(model, r.backbone, r.head, val);
  const common = {
    format: "fusionkit-checkpoint/1" as const,
    task: task.name,
    steps: r.steps,
    seconds: r.seconds,
    train: { ...budget, freeze: freeze ?? null, limit: limit ?? null, init: init ?? null, head: headIn ?? null },
    metrics: { val: metrics },
  };
  writeCheckpoint(out, r.backbone, { ...common, kind: "backbone", arch: model.arch, config: model.config });
  const headOut = headPathFor(out);
  writeCheckpoint(headOut, r.head, {
    ...common,
    kind: "head",
    numClasses: task.numClasses,
    featureDim: model.featureDim,
  });
  for (const t of [
    ...Object.values(r.backbone),
    ...Object.values(r.head),
    ...Object.values(backbone),
    ...Object.values(head),
  ])
    t.dispose();
  return { out, headOut, steps: r.steps, seconds: r.seconds, finalLoss: r.finalLoss, val: metrics };
}
