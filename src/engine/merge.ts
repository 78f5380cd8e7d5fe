import { mkdirSync, rmSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { loadMergeConfig } from "../config/parse.js";
import type { MergeConfig } from "../config/types.js";
import { writeFileAtomic } from "../io/atomic.js";
import { HF_METADATA, ShardedWriter } from "../io/sharded-write.js";
import { executePlan, type MergeProgress } from "./execute.js";
import {
  checkOutput,
  configText,
  copyTagalongFiles,
  copyTokenizerFiles,
  modelCard,
  publishDir,
  tempDirFor,
} from "./output.js";
import { type MergePlan, type PlanOptions, planMerge } from "./plan.js";

export interface MergeOptions extends PlanOptions {
  /** Worker threads (default: the number of cores). */
  jobs?: number;
  /** Seed of the random methods (DARE, DELLA); default 0. Results do not depend on `jobs`. */
  randomSeed?: number;
  /** Largest output shard in bytes (default 5e9). */
  outShardSize?: number;
  /** Copy the tokenizer files (default true). */
  copyTokenizer?: boolean;
  /** Replace a non-empty output directory. */
  force?: boolean;
  /** Remove the temporary output and exit on SIGINT / SIGTERM (the CLI sets this; a library caller may not want it). */
  cleanupOnSignal?: boolean;
  /** Elements per chunk when an elementwise method streams a tensor (tuning and tests; default 32768). */
  chunkElements?: number;
  /**
   * Write the output's large blocks with O_DIRECT where the file system allows (default true, or
   * FUSIONKIT_DIRECT_IO=0): the page cache is bypassed, which on VMs whose free memory is not yet backed by the host
   * makes writes several times faster; false writes through the page cache.
   */
  directIo?: boolean;
  onProgress?: (p: MergeProgress) => void;
  onWarning?: (message: string) => void;
}

export interface MergeSummary {
  readonly out: string;
  readonly method: string;
  readonly tensors: number;
  readonly numLayers: number;
  readonly files: readonly string[];
  readonly bytesRead: number;
  readonly bytesWritten: number;
  readonly seconds: number;
  readonly warnings: readonly string[];
}

export function defaultJobs(): number {
  return Math.max(1, cpus().length);
}

/**
 * Merge models as a mergekit config describes, streaming one tensor at a time per worker, into a Hugging Face model
 * directory at `out`. The directory appears only when complete; a failure leaves nothing behind and never touches
 * the inputs.
 */
export async function merge(
  config: MergeConfig | string,
  out: string,
  options: MergeOptions = {},
): Promise<MergeSummary> {
  const cfg = typeof config === "string" ? loadMergeConfig(config) : config;
  checkOutput(out, options.force === true);
  const plan = planMerge(cfg, options);
  const t0 = performance.now();
  const tmp = tempDirFor(out);
  let writer: ShardedWriter | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    writer?.abort();
    rmSync(tmp, { recursive: true, force: true });
    process.stderr.write(`fusionkit: interrupted (${signal}); removed the partial output\n`);
    process.exit(signal === "SIGINT" ? 130 : 143);
  };
  if (options.cleanupOnSignal) {
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
  }
  try {
    for (const w of plan.warnings) options.onWarning?.(w);
    mkdirSync(tmp, { recursive: true });
    writer = ShardedWriter.create(
      tmp,
      plan.tensors.map((t) => ({ name: t.name, dtype: t.outDtype, shape: t.outShape })),
      { maxShardBytes: options.outShardSize ?? 5e9, metadata: HF_METADATA },
    );
    const progress = await executePlan(plan, writer, {
      jobs: options.jobs ?? defaultJobs(),
      seed: options.randomSeed ?? 0,
      chunkElements: options.chunkElements,
      directIo: options.directIo,
      onProgress: options.onProgress,
    });
    await writer.settle();
    const files = writer.finish();
    writer = undefined;
    files.push(...writeSideFiles(plan, cfg, tmp, options.copyTokenizer !== false));
    publishDir(tmp, out);
    return {
      out,
      method: plan.method.name,
      tensors: plan.tensors.length,
      numLayers: plan.numLayers,
      files,
      bytesRead: progress.bytesRead,
      bytesWritten: progress.bytesWritten,
      seconds: (performance.now() - t0) / 1000,
      warnings: plan.warnings,
    };
  } catch (e) {
    await writer?.settle();
    writer?.abort();
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    plan.close();
  }
}

function writeSideFiles(plan: MergePlan, cfg: MergeConfig, dir: string, copyTokenizer: boolean): string[] {
  const files: string[] = [];
  if (plan.outConfig !== undefined) {
    writeFileAtomic(join(dir, "config.json"), `${JSON.stringify(plan.outConfig, null, 2)}\n`);
    files.push("config.json");
  }
  if (copyTokenizer || cfg.tokenizer_source !== undefined)
    files.push(...copyTokenizerFiles(plan, dir, cfg.chat_template));
  files.push(...copyTagalongFiles(plan, dir));
  writeFileAtomic(join(dir, "mergekit_config.yml"), configText(cfg));
  writeFileAtomic(join(dir, "README.md"), modelCard(plan, cfg));
  files.push("mergekit_config.yml", "README.md");
  return files;
}
