import type { Command } from "commander";
import type { SplitName } from "../data/types.js";
import { parseInteger } from "./options.js";

interface EvalCliOptions {
  task: string;
  head?: string;
  split: SplitName;
  limit?: number;
  seed: number;
  json?: boolean;
}

export function registerEval(program: Command): void {
  program
    .command("eval")
    .description("accuracy, loss and mean prediction entropy of a checkpoint (+ head) on a task split")
    .argument("<checkpoint>", "backbone checkpoint (.safetensors with its .json sidecar)")
    .requiredOption("--task <name>", "task to evaluate on")
    .option("--head <file>", "head checkpoint (default: <checkpoint>.head.safetensors)")
    .option("--split <split>", "train, val or test", "test")
    .option("--limit <n>", "only the first N examples", parseInteger("--limit", 1))
    .option("--seed <n>", "seed that carved val from train", parseInteger("--seed", 0), 0)
    .option("--json", "machine-readable output")
    .action(async (checkpoint: string, o: EvalCliOptions) => {
      const { runEval } = await import("../eval/run.js"); // tfjs loads only here
      const r = await runEval({ checkpoint, head: o.head, task: o.task, split: o.split, limit: o.limit, seed: o.seed });
      if (o.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      else
        process.stdout.write(
          `${r.task} ${r.split}: accuracy ${(100 * r.accuracy).toFixed(2)}%  loss ${r.loss.toFixed(4)}  entropy ${r.entropy.toFixed(4)}  (${r.count} examples)\n`,
        );
    });
}
