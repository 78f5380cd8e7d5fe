import { join } from "node:path";
import type { Command } from "commander";
import { FusionError } from "../errors.js";
import { readTextFile } from "../io/file-read.js";
import { formatTable } from "../report/format.js";
import type { PoolReport } from "../zoo/build.js";
import { parseInteger, parseJsonObject } from "./options.js";
import { progressBar } from "./progress.js";

interface ZooCliOptions {
  arch: string;
  suite: string;
  profile: string;
  out?: string;
  seed: number;
  config?: Record<string, unknown>;
  json?: boolean;
  progress: boolean;
}

const pct = (x: number | undefined) => (x === undefined ? "-" : (100 * x).toFixed(1));

/** The pool's accuracy matrix as a plain-text table: rows = models, columns = tasks. */
export function formatPool(r: PoolReport): string {
  const tasks = r.tasks.map((t) => t.name);
  const rows = Object.entries(r.accuracy).map(([name, accs]) => [
    name,
    ...tasks.map((t) => pct(accs[t])),
    pct(tasks.reduce((s, t) => s + (accs[t] ?? 0), 0) / tasks.length),
  ]);
  return [
    formatTable(["model", ...tasks, "avg"], rows, new Set(tasks.map((_, i) => i + 1).concat(tasks.length + 1))),
    "",
    `base+probe average ${pct(r.summary.baseProbeAverage)}%, fine-tuned average ${pct(r.summary.finetunedAverage)}% (gap ${pct(r.summary.gap)} points); built in ${r.seconds.toFixed(0)} s`,
  ].join("\n");
}

/** The same matrix as a Markdown table (for docs), with build times. */
export function formatPoolMarkdown(r: PoolReport): string {
  const tasks = r.tasks.map((t) => t.name);
  const avg = (accs: Record<string, number>) => tasks.reduce((s, t) => s + (accs[t] ?? 0), 0) / tasks.length;
  const lines = [
    `| model | ${tasks.join(" | ")} | avg |`,
    `|---|${tasks.map(() => "---:").join("|")}|---:|`,
    ...Object.entries(r.accuracy).map(
      ([name, accs]) => `| ${name} | ${tasks.map((t) => pct(accs[t])).join(" | ")} | ${pct(avg(accs))} |`,
    ),
  ];
  const own = tasks.map((t) => pct(r.accuracy[`finetuned/${t}`]?.[t]));
  lines.push(`| **fine-tuned on its own task** | ${own.join(" | ")} | ${pct(r.summary.finetunedAverage)} |`);
  const secs = [r.base, ...Object.values(r.heads), ...Object.values(r.finetuned)].reduce((s, a) => s + a.seconds, 0);
  lines.push(
    "",
    `${r.arch} ${JSON.stringify(r.config)}, profile ${r.profile}, seed ${r.seed}, ${r.backend}: ` +
      `base+probe average ${pct(r.summary.baseProbeAverage)}, fine-tuned average ${pct(r.summary.finetunedAverage)} ` +
      `(gap ${pct(r.summary.gap)} points); training ${secs.toFixed(0)} s in all (from the artifacts' sidecars), ` +
      `this run ${r.seconds.toFixed(0)} s (cached artifacts load instead of training).`,
  );
  return lines.join("\n");
}

export function registerZoo(program: Command): void {
  const zoo = program
    .command("zoo")
    .description("model pools: a pretrained base, per-task heads and fine-tuned models");
  zoo
    .command("build")
    .description("build (or complete, from the on-disk cache) a model pool for a task suite")
    .requiredOption("--arch <arch>", "mlp, vgg, resnet20 or vit")
    .option("--suite <name>", "task suite", "fmnist-8")
    .option("--profile <name>", "small (seconds, for tests) or full", "small")
    .option("--out <dir>", "pool folder (default zoo/<suite>/<arch>-<profile>)")
    .option("--seed <n>", "seed", parseInteger("--seed", 0), 0)
    .option("--config <json>", "model config overrides as JSON", parseJsonObject("--config"))
    .option("--json", "print pool.json")
    .option("--no-progress", "no progress output")
    .action(async (o: ZooCliOptions) => {
      const { buildZoo } = await import("../zoo/build.js"); // tfjs loads only here
      const bar = o.progress
        ? progressBar("{stage} {task} {bar} {value}/{total} | loss {loss} | {duration_formatted}")
        : undefined;
      let current = "";
      const r = await buildZoo({
        arch: o.arch,
        suite: o.suite,
        profile: o.profile,
        out: o.out,
        seed: o.seed,
        config: o.config,
        onEvent: (e) => {
          if (bar === undefined) return;
          const id = `${e.stage}/${e.task ?? ""}`;
          const payload = { stage: e.stage, task: e.task ?? "", loss: e.loss === undefined ? "-" : e.loss.toFixed(3) };
          if (id !== current && !(e.stage === "eval" && current.startsWith("eval/"))) {
            if (current !== "") bar.stop();
            bar.start(e.steps, e.step, payload);
            current = id;
          } else bar.update(e.step, payload);
        },
      });
      bar?.stop();
      process.stdout.write(o.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatPool(r)}\n`);
    });
  zoo
    .command("show")
    .description("print a pool's accuracy matrix from its pool.json")
    .argument("<dir>", "pool folder")
    .option("--markdown", "as a Markdown table")
    .action((dir: string, o: { markdown?: boolean }) => {
      const file = join(dir, "pool.json");
      let r: PoolReport;
      try {
        r = JSON.parse(readTextFile(file)) as PoolReport;
      } catch (e) {
        if (e instanceof FusionError) throw e;
        throw new FusionError("INVALID_ARGUMENT", `not valid JSON: ${(e as Error).message}`, { file });
      }
      if (r?.format !== "fusionkit-pool/1")
        throw new FusionError("INVALID_ARGUMENT", "not a fusionkit pool report (format fusionkit-pool/1)", { file });
      process.stdout.write(`${o.markdown ? formatPoolMarkdown(r) : formatPool(r)}\n`);
    });
}
