/** `fusionkit eval` as a library function: a (backbone, head) checkpoint pair on a task split. */
import { loadTaskSplit } from "../data/splits.js";
import { getTask } from "../data/tasks.js";
import type { SplitName } from "../data/types.js";
import { FusionError } from "../errors.js";
import { initNN } from "../nn/select.js";
import { headPathFor, loadBackbone, loadHead } from "../train/run.js";
import { type EvalResult, evaluate } from "./evaluate.js";

export interface EvalRunOptions {
  checkpoint: string;
  /** Head checkpoint (default: `<checkpoint>.head.safetensors` beside the backbone). */
  head?: string;
  task: string;
  split?: SplitName;
  limit?: number;
  /** For the val split: the seed that carved it from train. */
  seed?: number;
}

export async function runEval(o: EvalRunOptions): Promise<EvalResult> {
  const split = o.split ?? "test";
  if (!["train", "val", "test"].includes(split))
    throw new FusionError("INVALID_ARGUMENT", `split: expected train, val or test, got '${split}'`, { key: "split" });
  const task = getTask(o.task);
  await initNN({ log: null });
  const { model, params } = loadBackbone(o.checkpoint);
  const head = loadHead(o.head ?? headPathFor(o.checkpoint), model.featureDim, task.numClasses);
  try {
    return evaluate(model, params, head, loadTaskSplit(task, split, { seed: o.seed ?? 0, limit: o.limit }));
  } finally {
    for (const t of [...Object.values(params), ...Object.values(head)]) t.dispose();
  }
}
