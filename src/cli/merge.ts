import { type Command, InvalidArgumentError } from "commander";
import { loadMergeConfig } from "../config/parse.js";
import { describePlan } from "../engine/describe.js";
import { defaultJobs, merge } from "../engine/merge.js";
import { planMerge } from "../engine/plan.js";
import { FusionError } from "../errors.js";
import { formatBytes, formatTable } from "../report/format.js";
import { parseInteger } from "./options.js";
import { progressBar } from "./progress.js";

/** "5G", "500M", "1.5e9", "64K" -> bytes (powers of 1000, as mergekit's --out-shard-size). */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([KMGT]?)i?B?\s*$/i.exec(text);
  if (m === null) throw new InvalidArgumentError(`'${text}' is not a size (e.g. 5G, 500M, 1000000)`);
  const mult = { "": 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2]!.toUpperCase() as "" | "K" | "M" | "G" | "T"];
  const bytes = Math.floor(Number(m[1]) * mult);
  if (!(bytes > 0)) throw new InvalidArgumentError(`size must be positive, got '${text}'`);
  return bytes;
}

interface MergeCliOptions {
  dryRun?: boolean;
  json?: boolean;
  jobs: number;
  randomSeed: number;
  outShardSize: number;
  allowCrimes?: boolean;
  copyTokenizer: boolean;
  skipMismatched?: boolean;
  force?: boolean;
  progress: boolean;
  directIo: boolean;
}

function dryRun(configPath: string, opts: MergeCliOptions): void {
  const plan = planMerge(loadMergeConfig(configPath), opts);
  try {
    const d = describePlan(plan, opts.jobs);
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(d, null, 2)}\n`);
      return;
    }
    const lines = [
      `plan: ${d.method} over ${d.models.length} model(s), architecture ${d.architecture}, ${d.numLayers} layers, ${d.tensors.length} tensors`,
      `read ${formatBytes(d.bytesRead)}, write ${formatBytes(d.bytesWritten)}, estimated peak tensor memory ${formatBytes(d.estimatedPeakBytes)} with -j ${opts.jobs}`,
      ...d.warnings.map((w) => `warning: ${w}`),
      "",
      formatTable(
        ["tensor", "dtype", "shape", "inputs"],
        d.tensors.map((t) => [
          t.name,
          t.dtype,
          `[${t.shape.join(", ")}]`,
          [...t.inputs, ...(t.base ? [`base ${t.base}`] : [])].join(", "),
        ]),
      ),
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
  } finally {
    plan.close();
  }
}

async function runMerge(configPath: string, out: string, opts: MergeCliOptions): Promise<void> {
  const bar = opts.progress
    ? progressBar("merging {bar} {value}/{total} tensors | {rate} tensors/s | {mbps} MB/s | {duration_formatted}")
    : undefined;
  let started = false;
  const summary = await merge(configPath, out, {
    ...opts,
    cleanupOnSignal: true,
    onWarning: (w) => process.stderr.write(`fusionkit: warning: ${w}\n`),
    onProgress: (p) => {
      if (bar === undefined) return;
      const payload = {
        rate: (p.done / Math.max(p.seconds, 1e-3)).toFixed(1),
        mbps: ((p.bytesRead + p.bytesWritten) / 1e6 / Math.max(p.seconds, 1e-3)).toFixed(0),
      };
      if (!started) {
        bar.start(p.total, p.done, payload);
        started = true;
      } else bar.update(p.done, payload);
    },
  });
  bar?.stop();
  if (opts.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  else {
    process.stdout.write(
      `merged ${summary.tensors} tensors (${summary.method}, ${summary.numLayers} layers) into ${summary.out} in ${summary.seconds.toFixed(1)} s: ` +
        `read ${formatBytes(summary.bytesRead)}, wrote ${formatBytes(summary.bytesWritten)}\n` +
        `files: ${summary.files.join(", ")}\n`,
    );
  }
}

export function registerMerge(program: Command): void {
  program
    .command("merge")
    .description("merge models as a mergekit YAML config describes, into a Hugging Face model directory")
    .argument("<config>", "mergekit-style YAML config")
    .argument("[out]", "output directory (created; appears only when complete)")
    .option("--dry-run", "print the plan (tensors, methods, bytes to read / write, estimated peak memory) and exit")
    .option("--json", "machine-readable output")
    .option("-j, --jobs <n>", "worker threads", parseInteger("--jobs", 1), defaultJobs())
    .option("--random-seed <n>", "seed for random methods (dare_*, della*)", parseInteger("--random-seed", 0), 0)
    .option("--out-shard-size <size>", "largest output shard, bytes with K/M/G suffix", parseSize, 5e9)
    .option("--allow-crimes", "allow merging models of different architectures")
    .option("--copy-tokenizer", "copy the tokenizer files (default)", true)
    .option("--no-copy-tokenizer", "do not copy tokenizer files")
    .option("--skip-mismatched", "leave out tensors whose shapes differ (with a warning) instead of failing")
    .option("--force", "replace a non-empty output directory")
    .option("--no-progress", "no progress output")
    .option("--no-direct-io", "write the output through the page cache (default: large blocks go direct, O_DIRECT)")
    .action(async (config: string, out: string | undefined, opts: MergeCliOptions) => {
      if (opts.dryRun) return dryRun(config, opts);
      if (out === undefined) throw new FusionError("INVALID_ARGUMENT", "missing output directory (or use --dry-run)");
      await runMerge(config, out, opts);
    });
}
