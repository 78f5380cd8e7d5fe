import { rmSync } from "node:fs";
import { join } from "node:path";
import { FusionError } from "../errors.js";
import type { TypedArray } from "../tensor/dtype.js";
import { writeFileAtomic } from "./atomic.js";
import { DIRECT_ALIGN } from "./direct-write.js";
import { SafetensorsWriter, type TensorSpec, tensorBytes } from "./safetensors-write.js";

export const SINGLE_FILE = "model.safetensors";
/** Alignment of each shard's data section: the page (see direct-write.ts). */
const DATA_ALIGN = DIRECT_ALIGN;
export const INDEX_FILE = "model.safetensors.index.json";
/** Hugging Face checks this metadata when loading safetensors checkpoints. */
export const HF_METADATA: Readonly<Record<string, string>> = { format: "pt" };

export interface ShardPlan {
  readonly shards: ReadonlyArray<{
    readonly file: string;
    readonly specs: readonly TensorSpec[];
    readonly bytes: number;
  }>;
  readonly weightMap: ReadonlyMap<string, string>;
  readonly totalSize: number;
}

/**
 * Split tensors, in order, into shards of at most `maxShardBytes` (a tensor larger than the budget gets a shard of
 * its own), named as Hugging Face names them: one shard is `model.safetensors`, several are
 * `model-00001-of-0000N.safetensors`.
 */
export function planShards(specs: readonly TensorSpec[], maxShardBytes: number, prefix = "model"): ShardPlan {
  if (!(maxShardBytes > 0))
    throw new FusionError("INVALID_ARGUMENT", `shard size must be positive, got ${maxShardBytes}`);
  const groups: Array<{ specs: TensorSpec[]; bytes: number }> = [];
  let current: { specs: TensorSpec[]; bytes: number } | undefined;
  let totalSize = 0;
  for (const s of specs) {
    const b = tensorBytes(s);
    totalSize += b;
    if (current === undefined || (current.specs.length > 0 && current.bytes + b > maxShardBytes)) {
      current = { specs: [], bytes: 0 };
      groups.push(current);
    }
    current.specs.push(s);
    current.bytes += b;
  }
  if (groups.length === 0) groups.push({ specs: [], bytes: 0 });
  const n = groups.length;
  const width = Math.max(5, String(n).length);
  const pad = (i: number) => String(i).padStart(width, "0");
  const shards = groups.map((g, i) => ({
    file: n === 1 ? `${prefix}.safetensors` : `${prefix}-${pad(i + 1)}-of-${pad(n)}.safetensors`,
    specs: g.specs,
    bytes: g.bytes,
  }));
  const weightMap = new Map<string, string>();
  for (const sh of shards) for (const s of sh.specs) weightMap.set(s.name, sh.file);
  return { shards, weightMap, totalSize };
}

/** The index JSON exactly as transformers writes it: sorted weight_map, metadata.total_size. */
export function indexJson(plan: ShardPlan): string {
  const names = [...plan.weightMap.keys()].sort();
  const weight_map: Record<string, string> = {};
  for (const k of names) weight_map[k] = plan.weightMap.get(k)!;
  return `${JSON.stringify({ metadata: { total_size: plan.totalSize }, weight_map }, null, 2)}\n`;
}

/**
 * Streams tensors into a sharded checkpoint in `dir`: every shard is written under a temporary name and renamed
 * when `finish()` has checked that all tensors arrived; the index is written last.
 */
export class ShardedWriter {
  private readonly writers = new Map<string, SafetensorsWriter>();
  private readonly owner = new Map<string, SafetensorsWriter>();

  private constructor(
    readonly dir: string,
    readonly plan: ShardPlan,
  ) {}

  static create(
    dir: string,
    specs: readonly TensorSpec[],
    options: { maxShardBytes: number; metadata?: Readonly<Record<string, string>>; prefix?: string },
  ): ShardedWriter {
    const plan = planShards(specs, options.maxShardBytes, options.prefix);
    const w = new ShardedWriter(dir, plan);
    try {
      for (const sh of plan.shards) {
        // Data at a page boundary: with tensor sizes that are multiples of 4 KiB (most checkpoints'), every output
        // block can then be written direct, with no page-cache edges.
        const sw = SafetensorsWriter.create(join(dir, sh.file), sh.specs, options.metadata ?? HF_METADATA, DATA_ALIGN);
        w.writers.set(sh.file, sw);
        for (const s of sh.specs) w.owner.set(s.name, sw);
      }
    } catch (e) {
      w.abort();
      throw e;
    }
    return w;
  }

  write(name: string, data: TypedArray | Uint8Array): void {
    const sw = this.owner.get(name);
    if (sw === undefined)
      throw new FusionError("TENSOR_NOT_FOUND", "not in the shard plan", { file: this.dir, tensor: name });
    sw.write(name, data);
  }

  location(name: string): { file: string; offset: number; bytes: number } {
    return this.writerOf(name).location(name);
  }

  markWritten(name: string): void {
    this.writerOf(name).markWritten(name);
  }

  private writerOf(name: string): SafetensorsWriter {
    const sw = this.owner.get(name);
    if (sw === undefined)
      throw new FusionError("TENSOR_NOT_FOUND", "not in the shard plan", { file: this.dir, tensor: name });
    return sw;
  }

  private flushing: Promise<void> | undefined;

  /**
   * Begin writing back every shard's data so far in the background, unless a writeback is still running (see
   * SafetensorsWriter.writeback); `settle()` waits for it.
   */
  writeback(): void {
    if (this.flushing !== undefined) return;
    const all = Promise.all([...this.writers.values()].map((w) => w.writeback()));
    this.flushing = all.then(() => {
      this.flushing = undefined;
    });
  }

  /** Wait for a background writeback to end (before `finish()` or `abort()` closes the files). */
  async settle(): Promise<void> {
    await this.flushing;
  }

  /** Files written, in shard order (plus the index when there are several shards). */
  finish(): string[] {
    const files: string[] = [];
    try {
      for (const [file, sw] of this.writers) {
        sw.finish();
        files.push(file);
      }
      if (this.plan.shards.length > 1) {
        writeFileAtomic(join(this.dir, INDEX_FILE), indexJson(this.plan));
        files.push(INDEX_FILE);
      }
    } catch (e) {
      this.abort();
      for (const f of files) rmSync(join(this.dir, f), { force: true });
      throw e;
    }
    return files;
  }

  abort(): void {
    for (const sw of this.writers.values()) sw.abort();
  }
}
