import type { Worker } from "node:worker_threads";
import { FusionError, type FusionErrorCode } from "../errors.js";
import type { ShardedWriter } from "../io/sharded-write.js";
import { startThread } from "../io/threads.js";
import type { MergePlan } from "./plan.js";
import { type ExecSpec, type JobResult, type TensorJob, TensorRunner } from "./tensor-task.js";

export interface MergeProgress {
  readonly done: number;
  readonly total: number;
  readonly bytesRead: number;
  readonly bytesWritten: number;
  readonly seconds: number;
}

export interface ExecuteOptions {
  /** Worker threads; 1 runs on the calling thread. */
  readonly jobs: number;
  readonly seed: number;
  readonly chunkElements?: number;
  /** See ExecSpec.directIo. */
  readonly directIo?: boolean;
  readonly onProgress?: (p: MergeProgress) => void;
}

/**
 * Output bytes between background writebacks of the shards (see ShardedWriter.writeback). Each is an fdatasync,
 * so a device cache flush, and on these VMs a flush costs ~50 ms however little it has to write and stalls the
 * writes issued meanwhile: writing 1.52 GB from two threads took 3.2-3.3 s with one every 32 MiB, 1.4 s + 0.1 s of
 * final fsync with one every 256 MiB (0.5-1.5 s + 0.8-1.4 s with none). strace of the linear bench merge:
 * 69 of 2987 writes over 10 ms, 2.1 s of the writers' 4.5 s, with one every 32 MiB; 16 (0.2 s) with none.
 */
const WRITEBACK_BYTES = 256 << 20;

type WorkerReply =
  | { ok: JobResult }
  | { closed: true }
  | {
      error: { code?: FusionErrorCode; message: string; file?: string; tensor?: string; key?: string; fusion: boolean };
      index: number;
    };

/** Start a merge worker (worker.ts / worker.js). */
function startWorker(spec: ExecSpec): Worker {
  return startThread(import.meta.url, "worker", spec);
}

function jobsOf(plan: MergePlan, writer: ShardedWriter): TensorJob[] {
  return plan.tensors.map((tensor, index) => {
    const loc = writer.location(tensor.name);
    return { index, tensor, out: { file: loc.file, offset: loc.offset } };
  });
}

/** Run every planned tensor into `writer` (which must hold the plan's tensors), in parallel when jobs > 1. */
export async function executePlan(
  plan: MergePlan,
  writer: ShardedWriter,
  options: ExecuteOptions,
): Promise<MergeProgress> {
  const spec: ExecSpec = {
    method: plan.method.name,
    modelPaths: plan.models.map((m) => m.path),
    computeDtype: plan.computeDtype,
    seed: options.seed,
    chunkElements: options.chunkElements,
    directIo: options.directIo,
  };
  const jobs = jobsOf(plan, writer);
  const t0 = performance.now();
  const progress = { done: 0, total: jobs.length, bytesRead: 0, bytesWritten: 0, seconds: 0 };
  let flushedAt = 0;
  const finished = (r: JobResult) => {
    writer.markWritten(plan.tensors[r.index]!.name);
    progress.done++;
    progress.bytesRead += r.bytesRead;
    progress.bytesWritten += r.bytesWritten;
    if (progress.bytesWritten - flushedAt >= WRITEBACK_BYTES) {
      // The kernel would hold all of it dirty (its background threshold is a share of RAM) until the final fsync,
      // which then waits for the whole output: write it back while the merge goes on.
      writer.writeback();
      flushedAt = progress.bytesWritten;
    }
    progress.seconds = (performance.now() - t0) / 1000;
    options.onProgress?.({ ...progress });
  };
  const n = Math.max(1, Math.min(options.jobs, jobs.length));
  if (n === 1) {
    const runner = new TensorRunner(spec);
    try {
      for (const job of jobs) {
        finished(runner.run(job));
        await new Promise((r) => setImmediate(r)); // let progress output and signals through
      }
    } finally {
      runner.close();
    }
    return progress;
  }
  return await new Promise<MergeProgress>((resolve, reject) => {
    const workers: Worker[] = [];
    let next = 0;
    let closed = 0;
    let failed = false;
    const stopAll = () => {
      for (const w of workers) void w.terminate();
    };
    const fail = (e: unknown) => {
      if (failed) return;
      failed = true;
      stopAll();
      reject(e);
    };
    // Largest tensors first (longest-processing-time order): the last tensors then are small, so no worker sits
    // idle while another finishes an embedding. Results land at their own offsets, so order changes no byte.
    const order = jobs
      .map((job, i) => ({ job, i, size: job.tensor.outShape.reduce((a, d) => a * d, 1) }))
      .sort((a, b) => b.size - a.size || a.i - b.i)
      .map((x) => x.job);
    const feed = (w: Worker) => {
      if (next < order.length) w.postMessage(order[next++]);
      else w.postMessage("close");
    };
    for (let i = 0; i < n; i++) {
      const w = startWorker(spec);
      workers.push(w);
      w.on("message", (m: WorkerReply) => {
        if (failed) return;
        if ("error" in m) {
          const e = m.error;
          fail(
            e.fusion
              ? new FusionError(e.code!, e.message, { file: e.file, tensor: e.tensor, key: e.key })
              : new Error(
                  m.index < 0
                    ? `merge worker failed finishing its writes: ${e.message}`
                    : `merge worker failed on ${plan.tensors[m.index]?.name}: ${e.message}`,
                ),
          );
          return;
        }
        if ("closed" in m) {
          // Its writes are all done (a worker closes once no job is left for it).
          if (++closed === workers.length) resolve({ ...progress });
          return;
        }
        try {
          finished(m.ok);
        } catch (err) {
          fail(err);
          return;
        }
        feed(w);
      });
      w.on("error", fail);
      w.on("exit", (code) => {
        if (code !== 0 && closed < workers.length) fail(new Error(`merge worker exited with code ${code}`));
      });
      feed(w);
    }
  });
}
