import { openSync } from "node:fs";
import { FusionError } from "../errors.js";
import { writeAllSync } from "../io/atomic.js";
import { closeFd } from "../io/file-read.js";
import { ModelDir } from "../io/model-dir.js";
import { getMethod } from "../merge/registry.js";
import type { MergeMethodSpec, TensorData } from "../merge/types.js";
import { decodeToF32, encodeFromF32 } from "../tensor/convert.js";
import { type DType, dtypeSize, storageBytes, viewStorage } from "../tensor/dtype.js";
import { formatShape, numel, sameShape } from "../tensor/tensor.js";
import type { PlannedInput, PlannedTensor } from "./plan.js";

/** Where a tensor's bytes go: a file (the output shard under its temporary name) and the absolute offset. */
export interface OutputLocation {
  readonly file: string;
  readonly offset: number;
}

/** What a worker (or the main thread) needs to run tensors of a plan: plain data, cloneable to workers. */
export interface ExecSpec {
  readonly method: string;
  readonly modelPaths: readonly string[];
  readonly computeDtype: DType | undefined;
  readonly seed: number;
}

export interface TensorJob {
  readonly index: number;
  readonly tensor: PlannedTensor;
  readonly out: OutputLocation;
}

export interface JobResult {
  readonly index: number;
  readonly bytesRead: number;
  readonly bytesWritten: number;
}

/** Grow-only scratch buffers, one per slot: tensors of a run reuse memory instead of touching fresh pages. */
class Pool {
  private readonly bytes = new Map<number, Uint8Array>();
  private readonly floats = new Map<number, Float32Array>();

  u8(slot: number, n: number): Uint8Array {
    let b = this.bytes.get(slot);
    if (b === undefined || b.length < n) {
      b = new Uint8Array(Math.ceil(n * 1.125) + 64);
      this.bytes.set(slot, b);
    }
    return b.subarray(0, n);
  }

  f32(slot: number, n: number): Float32Array {
    let b = this.floats.get(slot);
    if (b === undefined || b.length < n) {
      b = new Float32Array(Math.ceil(n * 1.125) + 16);
      this.floats.set(slot, b);
    }
    return b.subarray(0, n);
  }
}

const ROUND_SLOT = -1;
const OUT_SLOT = -2;

/**
 * Runs planned tensors one at a time: read each input's bytes, decode to float32 (rounded through the config's
 * `dtype` when set), merge, encode to the output dtype and write at the tensor's offset. Memory held: the largest
 * tensor's inputs and output, reused from one tensor to the next.
 */
export class TensorRunner {
  private readonly method: MergeMethodSpec;
  private readonly dirs = new Map<number, ModelDir>();
  private readonly outFds = new Map<string, number>();
  private readonly pool = new Pool();

  constructor(private readonly spec: ExecSpec) {
    this.method = getMethod(spec.method);
  }

  private dir(model: number): ModelDir {
    let d = this.dirs.get(model);
    if (d === undefined) {
      d = ModelDir.open(this.spec.modelPaths[model]!);
      this.dirs.set(model, d);
    }
    return d;
  }

  private outFd(file: string): number {
    let fd = this.outFds.get(file);
    if (fd === undefined) {
      fd = openSync(file, "r+");
      this.outFds.set(file, fd);
    }
    return fd;
  }

  private load(input: PlannedInput, slot: number): TensorData {
    const raw = this.dir(input.model).stateDict.readBytes(input.tensor, this.pool.u8(slot, input.bytes));
    const n = numel(input.shape);
    const values = this.pool.f32(slot, n);
    decodeToF32(input.dtype, viewStorage(input.dtype, raw), values);
    const cd = this.spec.computeDtype;
    if (cd !== undefined && cd !== input.dtype && cd !== "F32" && cd !== "F64") {
      // mergekit casts inputs to `dtype` before merging: round through it.
      const bits = viewStorage(cd, this.pool.u8(ROUND_SLOT, n * dtypeSize(cd)));
      encodeFromF32(values, cd, bits);
      decodeToF32(cd, bits, values);
    }
    return { data: values, shape: input.shape };
  }

  run(job: TensorJob): JobResult {
    const t = job.tensor;
    const models = t.inputs.map((x, i) => this.load(x, i));
    const base = t.base === undefined ? undefined : this.load(t.base, t.inputs.length);
    const result = this.method.merge({
      tensorName: t.name,
      isEmbed: t.isEmbed,
      models,
      base,
      params: t.params,
      modelParams: t.modelParams,
      seed: this.spec.seed,
    });
    if (!sameShape(result.shape, t.outShape)) {
      throw new FusionError(
        "SHAPE_MISMATCH",
        `${this.method.name} produced ${formatShape(result.shape)}, planned ${formatShape(t.outShape)}`,
        {
          tensor: t.name,
        },
      );
    }
    const n = result.data.length;
    const outBytes = this.pool.u8(OUT_SLOT, n * dtypeSize(t.outDtype));
    const out = viewStorage(t.outDtype, outBytes);
    encodeFromF32(result.data, t.outDtype, out);
    writeAllSync(this.outFd(job.out.file), storageBytes(out), job.out.offset, job.out.file);
    const bytesRead = t.inputs.reduce((s, x) => s + x.bytes, 0) + (t.base?.bytes ?? 0);
    return { index: job.index, bytesRead, bytesWritten: outBytes.length };
  }

  close(): void {
    for (const d of this.dirs.values()) d.close();
    for (const fd of this.outFds.values()) closeFd(fd);
    this.dirs.clear();
    this.outFds.clear();
  }
}
