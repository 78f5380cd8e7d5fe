import type { Command } from "commander";
import type { ScheduleKind } from "../train/schedule.js";
import { parseInteger, parseJsonObject, parseNonNegative, parsePositive } from "./options.js";
import { progressBar } from "./progress.js";

interface TrainCliOptions {
  task: string;
  out: string;
  arch?: string;
  config?: Record<string, unknown>;
  init?: string;
  head?: string;
  freeze?: "backbone" | "head";
  steps: number;
  batchSize: number;
  lr: number;
  optimizer: string;
  momentum: number;
  weightDecay: number;
  schedule: ScheduleKind;
  warmup: number;
  augmentShift: number;
  seed: number;
  limit?: number;
  json?: boolean;
  progress: boolean;
}

export function registerTrain(program: Command): void {
  program
    .command("train")
    .description(
      "train a model (or fine-tune a checkpoint) on one task; writes backbone + head safetensors with JSON sidecars",
    )
    .requiredOption("--task <name>", "task (fmnist-8: fmnist, rot90, flip, invert, quadrants, coarse4, first5, last5)")
    .requiredOption(
      "--out <file.safetensors>",
      "backbone checkpoint to write (head beside it: <name>.head.safetensors)",
    )
    .option("--arch <arch>", "new model: mlp, vgg, resnet20, vit, llama")
    .option("--config <json>", "model config as JSON, e.g. '{\"hidden\":[256,256]}'", parseJsonObject("--config"))
    .option("--init <file>", "start from this backbone checkpoint")
    .option("--head <file>", "start from this head checkpoint")
    .option("--freeze <part>", "keep backbone or head fixed")
    .option("--steps <n>", "optimizer steps", parseInteger("--steps", 1), 500)
    .option("--batch-size <n>", "examples per step", parseInteger("--batch-size", 1), 128)
    .option("--lr <x>", "peak learning rate", parsePositive("--lr"), 1e-3)
    .option("--optimizer <name>", "sgd (momentum), adam or adamw", "adamw")
    .option("--momentum <x>", "SGD momentum", parseNonNegative("--momentum"), 0.9)
    .option("--weight-decay <x>", "AdamW decoupled weight decay", parseNonNegative("--weight-decay"), 0.01)
    .option("--schedule <kind>", "constant or cosine (after warmup)", "cosine")
    .option("--warmup <n>", "linear warmup steps", parseInteger("--warmup", 0), 0)
    .option("--augment-shift <px>", "random translations up to this many pixels", parseInteger("--augment-shift", 0), 0)
    .option("--seed <n>", "seed for init, batching and augmentation", parseInteger("--seed", 0), 0)
    .option("--limit <n>", "use only the first N training examples", parseInteger("--limit", 1))
    .option("--json", "machine-readable summary")
    .option("--no-progress", "no progress output")
    .action(async (o: TrainCliOptions) => {
      if (o.freeze !== undefined && o.freeze !== "backbone" && o.freeze !== "head")
        throw new Error(`--freeze must be backbone or head, got '${o.freeze}'`);
      if (o.schedule !== "cosine" && o.schedule !== "constant")
        throw new Error(`--schedule must be cosine or constant, got '${o.schedule}'`);
      // The nn stack (tfjs) loads only for the commands that need it: merging stays light.
      const { parseOptimizerName } = await import("../train/optimizers.js");
      const { runTrain } = await import("../train/run.js");
      const bar = o.progress
        ? progressBar("training {bar} {value}/{total} steps | loss {loss} | {duration_formatted}")
        : undefined;
      bar?.start(o.steps, 0, { loss: "-" });
      const r = await runTrain({
        task: o.task,
        out: o.out,
        arch: o.arch,
        config: o.config,
        init: o.init,
        head: o.head,
        freeze: o.freeze,
        limit: o.limit,
        steps: o.steps,
        batchSize: o.batchSize,
        seed: o.seed,
        lr: o.lr,
        schedule: o.schedule,
        warmupSteps: o.warmup,
        augmentShift: o.augmentShift,
        optimizer: {
          name: parseOptimizerName(o.optimizer, "--optimizer"),
          momentum: o.momentum,
          weightDecay: o.weightDecay,
        },
        onProgress: (p) => bar?.update(p.step, { loss: p.loss.toFixed(4) }),
      });
      bar?.stop();
      if (o.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      else
        process.stdout.write(
          `trained ${r.steps} steps in ${r.seconds.toFixed(1)} s (final loss ${r.finalLoss.toFixed(4)}); ` +
            `val accuracy ${(100 * r.val.accuracy).toFixed(2)}% on ${r.val.count} examples\nwrote ${r.out} and ${r.headOut}\n`,
        );
    });
}
