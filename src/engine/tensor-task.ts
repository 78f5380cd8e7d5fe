import { FusionError } from "../errors.js";
import { BlockWriter } from "../io/block-writer.js";
import { directIoWanted, OutputFile } from "../io/direct-write.js";
import { closeFd, openReadFd, readExactSync } from "../io/file-read.js";
import { ModelDir } from "../io/model-dir.js";
import { getMethod } from "../merge/registry.js";
import { SAMPLE_RUN, sampleStarts } from "../merge/sample.js";
import type {
  Bf16Kernel,
  MergeMethodSpec,
  StreamChunk,
  StreamInput,
  StreamingMerge,
  TensorData,
} from "../merge/types.js";
import { decodeToF32, encodeFromF32 } from "../tensor/convert.js";
import { type DType, dtypeSize, storageBytes, viewStorage } from "../tensor/dtype.js";
import { formatShape, numel, sameShape } from "../tensor/tensor.js";
import { releaseWasmArena, type WasmArena, wasmArena } from "../wasm/arena.js";
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
  /** Elements per chunk for elementwise methods (default 32768). */
  readonly chunkElements?: number;
  /**
   * Bytes of input data a multi-pass (streaming) merge keeps in memory after its first pass, so later passes
   * need not read the files again (default 16 MiB; a larger tensor keeps its leading chunks). WebAssembly path only.
   */
  readonly cacheBytes?: number;
  /** Write the output's aligned parts with O_DIRECT where the file system allows (default true; FUSIONKIT_DIRECT_IO=0 turns it off). */
  readonly directIo?: boolean;
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
/** Elements per chunk of an elementwise merge: inputs, float32 copies and output fit in a core's cache. */
export const CHUNK = 1 << 15;
const OUT_SLOT = -2;
const RESULT_SLOT = -3;
/**
 * Default input cache. Small on purpose: a later pass re-reads a tensor it just read, from the page cache, which
 * on these VMs costs less than first-touching a large cache (page faults ~0.2 GB/s). Bench set, ties / dare_ties
 * at -j 2, means of 4 interleaved runs: 96 MiB 6.21 / 5.39 s (peak RSS 427 / 375 MB), 16 MiB 5.58 / 5.09 s
 * (258 / 219 MB), none 5.47 / 5.15 s (233 / 182 MB).
 */
const CACHE_BYTES = 16 << 20;
/** Compute chunks per positional read / write on the wasm path (8 x 32K bf16 elements = 512 KiB reads). */
export const IO_BLOCK_CHUNKS = 8;

/** Output blocks of at least this many bytes are written by the writer thread (FUSIONKIT_ASYNC_WRITE_BYTES). */
const ASYNC_WRITE_BYTES = 64 << 10;

/** The streaming input cache's size: ExecSpec.cacheBytes, else FUSIONKIT_STREAM_CACHE_BYTES, else 16 MiB. */
export function cacheBudget(spec: Pick<ExecSpec, "cacheBytes">): number {
  return spec.cacheBytes ?? bytesFromEnv("FUSIONKIT_STREAM_CACHE_BYTES", CACHE_BYTES);
}

/** What a stream over planned tensor `t` is told before it sees data. */
export function streamInputOf(t: PlannedTensor, extra: Pick<StreamInput, "seed" | "wasmChunk"> = {}): StreamInput {
  return {
    tensorName: t.name,
    numel: numel(t.outShape),
    shape: t.outShape,
    models: t.inputs.length,
    hasBase: t.base !== undefined,
    params: t.params,
    modelParams: t.modelParams,
    ...extra,
  };
}

/**
 * How TensorRunner.run merges a tensor of more than `chunk` elements whose inputs share its shape: chunk by chunk
 * when the method is elementwise for its parameters, else in passes over chunks when the method's stream takes
 * them ("streamed": run still falls back to the whole tensor where `streaming` declines). Anything else: whole.
 */
export function mergeForm(t: PlannedTensor, method: MergeMethodSpec, chunk: number): "chunked" | "streamed" | "whole" {
  const all = t.base === undefined ? t.inputs : [...t.inputs, t.base];
  if (numel(t.outShape) <= chunk || !all.every((x) => sameShape(x.shape, t.outShape))) return "whole";
  if (method.elementwise?.(t.params, t.modelParams) === true) return "chunked";
  return method.streaming === undefined ? "whole" : "streamed";
}

/** A byte count from the environment variable `name` (a number >= 0), else `fallback`. */
function bytesFromEnv(name: string, fallback: number): number {
  const text = process.env[name];
  const value = Number(text);
  return text !== undefined && text !== "" && Number.isFinite(value) && value >= 0 ? value : fallback;
}

/** A chunk source: one input's file, where its tensor starts, and its element size. */
interface Source {
  readonly x: PlannedInput;
  readonly fd: number;
  readonly file: string;
  readonly offset: number;
  readonly size: number;
}

/** A tensor's chunk buffers in the wasm arena (pointers): raw bytes and float32 values per input, and the output. */
interface WasmBuffers {
  readonly raw: number[];
  readonly values: number[];
  readonly out: number;
  readonly outRaw: number;
}

/**
 * Runs planned tensors one at a time: read each input's bytes, decode to float32 (rounded through the config's
 * `dtype` when set), merge, encode to the output dtype and write at the tensor's offset. Memory held: the largest
 * tensor's inputs and output, reused from one tensor to the next.
 */
export class TensorRunner {
  private readonly method: MergeMethodSpec;
  private readonly dirs = new Map<number, ModelDir>();
  private readonly outFiles = new Map<string, OutputFile>();
  private readonly inFds = new Map<string, number>();
  private readonly pool = new Pool();

  private readonly chunk: number;

  /** Large output blocks of the wasm path go through a writer thread (started on first use). */
  private readonly blocks: BlockWriter;
  private readonly asyncWriteBytes: number;
  /** Output writes may go direct (ExecSpec.directIo and FUSIONKIT_DIRECT_IO). */
  private readonly direct: boolean;

  constructor(private readonly spec: ExecSpec) {
    this.method = getMethod(spec.method);
    this.chunk = spec.chunkElements ?? CHUNK;
    this.direct = spec.directIo !== false && directIoWanted();
    this.blocks = new BlockWriter(this.direct);
    this.asyncWriteBytes = bytesFromEnv("FUSIONKIT_ASYNC_WRITE_BYTES", ASYNC_WRITE_BYTES);
  }

  private dir(model: number): ModelDir {
    let d = this.dirs.get(model);
    if (d === undefined) {
      d = ModelDir.open(this.spec.modelPaths[model]!);
      this.dirs.set(model, d);
    }
    return d;
  }

  /** The output shard `file` (under its temporary name), for positional writes. */
  private output(file: string): OutputFile {
    let f = this.outFiles.get(file);
    if (f === undefined) {
      f = OutputFile.open(file, this.direct);
      this.outFiles.set(file, f);
    }
    return f;
  }

  /** Decode raw bytes into the float32 buffer of `slot`, rounded through the config's `dtype` when set. */
  private decode(dtype: DType, raw: Uint8Array, slot: number, n: number): Float32Array {
    const values = this.pool.f32(slot, n);
    decodeToF32(dtype, viewStorage(dtype, raw), values);
    const cd = this.spec.computeDtype;
    if (cd !== undefined && cd !== dtype && cd !== "F32" && cd !== "F64") {
      // mergekit casts inputs to `dtype` before merging: round through it.
      const bits = viewStorage(cd, this.pool.u8(ROUND_SLOT, n * dtypeSize(cd)));
      encodeFromF32(values, cd, bits);
      decodeToF32(cd, bits, values);
    }
    return values;
  }

  private load(input: PlannedInput, slot: number): TensorData {
    const raw = this.dir(input.model).stateDict.readBytes(input.tensor, this.pool.u8(slot, input.bytes));
    return { data: this.decode(input.dtype, raw, slot, numel(input.shape)), shape: input.shape };
  }

  /**
   * Merge one tensor into its place in the output. Its last blocks may still be in the writer thread's queue when
   * this returns (the next tensor's work overlaps them): `flush` or `close` waits for them and reports their errors.
   */
  run(job: TensorJob): JobResult {
    const t = job.tensor;
    const all = t.base === undefined ? t.inputs : [...t.inputs, t.base];
    const n = numel(t.outShape);
    const wasm = wasmArena();
    const form = mergeForm(t, this.method, this.chunk);
    if (form === "chunked") {
      return wasm === null ? this.runChunked(job, all, n) : this.runChunkedWasm(wasm, job, all, n);
    }
    if (form === "streamed" && wasm !== null) {
      const done = this.runStreamingWasm(wasm, job, all, n);
      if (done !== undefined) return done;
    } else if (form === "streamed") {
      const stream = this.method.streaming?.(streamInputOf(t, { seed: this.spec.seed }));
      if (stream !== undefined) return this.runStreaming(job, all, n, stream);
    }
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
    const outBytes = this.pool.u8(OUT_SLOT, n * dtypeSize(t.outDtype));
    const out = viewStorage(t.outDtype, outBytes);
    encodeFromF32(result.data, t.outDtype, out);
    this.output(job.out.file).write(storageBytes(out), job.out.offset);
    return { index: job.index, bytesRead: all.reduce((s, x) => s + x.bytes, 0), bytesWritten: outBytes.length };
  }

  private inFd(file: string): number {
    let fd = this.inFds.get(file);
    if (fd === undefined) {
      fd = openReadFd(file);
      this.inFds.set(file, fd);
    }
    return fd;
  }

  /** Open every input for positional chunk reads. */
  private chunkSources(all: readonly PlannedInput[]): Source[] {
    return all.map((x) => {
      const info = this.dir(x.model).stateDict.info(x.tensor);
      return { x, fd: this.inFd(info.file), file: info.file, offset: info.offset, size: dtypeSize(x.dtype) };
    });
  }

  /** Chunk [start, start + len) of every input, read with positional reads and decoded into pooled buffers. */
  private readChunk(sources: readonly Source[], start: number, len: number): Float32Array[] {
    return sources.map((s, i) => {
      const raw = this.pool.u8(i, len * s.size);
      readExactSync(s.fd, raw, s.offset + start * s.size, s.file);
      return this.decode(s.x.dtype, raw, i, len);
    });
  }

  private writeChunk(job: TensorJob, start: number, values: Float32Array): void {
    const t = job.tensor;
    const size = dtypeSize(t.outDtype);
    const outBytes = this.pool.u8(OUT_SLOT, values.length * size);
    encodeFromF32(values, t.outDtype, viewStorage(t.outDtype, outBytes));
    this.output(job.out.file).write(outBytes, job.out.offset + start * size);
  }

  /**
   * Elementwise merges stream through the tensor in chunks that stay in cache: read a chunk of every input with a
   * positional read, decode, merge, encode, write it at its offset. Same result as the whole tensor at once.
   */
  private runChunked(job: TensorJob, all: readonly PlannedInput[], n: number): JobResult {
    const t = job.tensor;
    const sources = this.chunkSources(all);
    const k = t.inputs.length;
    for (let start = 0; start < n; start += this.chunk) {
      const len = Math.min(this.chunk, n - start);
      const shape = [len];
      const chunks = this.readChunk(sources, start, len).map((data) => ({ data, shape }));
      const result = this.method.merge({
        tensorName: t.name,
        models: chunks.slice(0, k),
        base: t.base === undefined ? undefined : chunks[k],
        params: t.params,
        modelParams: t.modelParams,
        seed: this.spec.seed,
      });
      this.writeChunk(job, start, result.data);
    }
    return this.done(job, all, n);
  }

  /** Multi-pass merges (top-k thresholds, norms): statistic passes over chunks, then an output pass. */
  private runStreaming(job: TensorJob, all: readonly PlannedInput[], n: number, stream: StreamingMerge): JobResult {
    const k = job.tensor.inputs.length;
    const sources = this.chunkSources(all);
    const chunkAt = (start: number, len: number): StreamChunk => {
      const data = this.readChunk(sources, start, len);
      return { start, models: data.slice(0, k), base: data[k] };
    };
    for (let pass = 0; pass < stream.passes; pass++) {
      for (let start = 0; start < n; start += this.chunk)
        stream.observe(pass, chunkAt(start, Math.min(this.chunk, n - start)));
      stream.endPass(pass);
    }
    for (let start = 0; start < n; start += this.chunk) {
      const len = Math.min(this.chunk, n - start);
      const out = this.pool.f32(RESULT_SLOT, len);
      stream.emit(chunkAt(start, len), out);
      this.writeChunk(job, start, out);
    }
    return this.done(job, all, n);
  }

  // ---- WebAssembly path: chunks are read straight into arena memory, decoded, merged and encoded there ----

  /**
   * Arena buffers for one tensor: per input a raw block buffer (I/O_BLOCK chunks) and a float32 chunk; the float32
   * result chunk and the encoded output block.
   */
  private wasmBuffers(
    a: WasmArena,
    sources: readonly Source[],
    outDtype: DType,
    chunk: number,
    block: number,
  ): WasmBuffers {
    return {
      raw: sources.map((s) => a.alloc(block * s.size)),
      values: sources.map(() => a.alloc(chunk * 4)),
      out: a.alloc(chunk * 4),
      outRaw: a.alloc(block * dtypeSize(outDtype)),
    };
  }

  /** Decode `len` raw elements at `raw` into float32 at `dst`, rounded through the config's `dtype` when set. */
  private decodeWasm(a: WasmArena, dtype: DType, raw: number, dst: number, len: number): void {
    if (dtype === "BF16") a.k.decode_bf16(raw, dst, len);
    else if (dtype === "F16") a.k.decode_f16(raw, dst, len, a.f16Table);
    else if (dtype === "F32") a.u8(dst, len * 4).set(a.u8(raw, len * 4));
    else decodeToF32(dtype, viewStorage(dtype, a.u8(raw, len * dtypeSize(dtype))), a.f32(dst, len));
    const cd = this.spec.computeDtype;
    if (cd === undefined || cd === dtype || cd === "F32" || cd === "F64") return;
    if (cd === "BF16") a.k.round_bf16(dst, len);
    else {
      const values = a.f32(dst, len);
      const bits = viewStorage(cd, this.pool.u8(ROUND_SLOT, len * dtypeSize(cd)));
      encodeFromF32(values, cd, bits);
      decodeToF32(cd, bits, values);
    }
  }

  /** Read elements [start, start + len) of every input into its block buffer `raws[i]`. */
  private readBlockWasm(a: WasmArena, sources: readonly Source[], raws: readonly number[], start: number, len: number) {
    for (let i = 0; i < sources.length; i++) {
      const s = sources[i]!;
      readExactSync(s.fd, a.u8(raws[i]!, len * s.size), s.offset + start * s.size, s.file);
    }
  }

  /** Decode the chunk at element `at` of every input's block `raws[i]` into the float32 chunk buffers. */
  private decodeChunkWasm(
    a: WasmArena,
    sources: readonly Source[],
    raws: readonly number[],
    b: WasmBuffers,
    at: number,
    len: number,
  ): Float32Array[] {
    for (let i = 0; i < sources.length; i++) {
      const s = sources[i]!;
      this.decodeWasm(a, s.x.dtype, raws[i]! + at * s.size, b.values[i]!, len);
    }
    return b.values.map((p) => a.f32(p, len));
  }

  /** Encode a float32 result chunk (copied to b.out unless it is there) into the output block at element `at`. */
  private encodeChunkWasm(a: WasmArena, dtype: DType, b: WasmBuffers, at: number, values: Float32Array): void {
    const len = values.length;
    if (values.byteOffset !== b.out || !a.owns(values)) a.f32(b.out, len).set(values);
    const size = dtypeSize(dtype);
    if (dtype === "BF16") a.k.encode_bf16(b.out, b.outRaw + at * size, len);
    else if (dtype === "F32") a.u8(b.outRaw + at * 4, len * 4).set(a.u8(b.out, len * 4));
    else encodeFromF32(a.f32(b.out, len), dtype, viewStorage(dtype, a.u8(b.outRaw + at * size, len * size)));
  }

  /** Write an encoded output block: handed to the writer thread when it is large, else written here. */
  private writeBlockWasm(a: WasmArena, job: TensorJob, b: WasmBuffers, start: number, len: number): void {
    const size = dtypeSize(job.tensor.outDtype);
    const bytes = a.u8(b.outRaw, len * size);
    const position = job.out.offset + start * size;
    if (bytes.length >= this.asyncWriteBytes) this.blocks.write(job.out.file, bytes, position);
    else this.output(job.out.file).write(bytes, position);
  }

  /** Elements per positional read / write: IO_BLOCK_CHUNKS compute chunks (large reads cost far less per byte). */
  private blockOf(chunk: number, n: number): number {
    return Math.min(n, chunk * IO_BLOCK_CHUNKS);
  }

  /**
   * The method's fused bf16 kernel when every input and the output are bf16 and the config's `dtype` rounds nothing
   * (bf16, float32 or float64 compute: bf16 values are exact in all three), else undefined.
   */
  private fusedBf16(job: TensorJob, sources: readonly Source[]): Bf16Kernel | undefined {
    const t = job.tensor;
    const cd = this.spec.computeDtype;
    if (this.method.wasmBf16 === undefined || t.outDtype !== "BF16") return undefined;
    if (!sources.every((s) => s.x.dtype === "BF16")) return undefined;
    if (cd !== undefined && cd !== "BF16" && cd !== "F32" && cd !== "F64") return undefined;
    return this.method.wasmBf16({
      tensorName: t.name,
      models: t.inputs.length,
      params: t.params,
      modelParams: t.modelParams,
    });
  }

  private runChunkedWasm(a: WasmArena, job: TensorJob, all: readonly PlannedInput[], n: number): JobResult {
    const t = job.tensor;
    const sources = this.chunkSources(all);
    const k = t.inputs.length;
    const chunk = Math.min(this.chunk, n);
    const block = this.blockOf(chunk, n);
    const mark = a.mark();
    try {
      const b = this.wasmBuffers(a, sources, t.outDtype, chunk, block);
      const fused = this.fusedBf16(job, sources);
      for (let bs = 0; bs < n; bs += block) {
        const blen = Math.min(block, n - bs);
        this.readBlockWasm(a, sources, b.raw, bs, blen);
        if (fused !== undefined) {
          fused(a, b.raw, b.outRaw, blen);
          this.writeBlockWasm(a, job, b, bs, blen);
          continue;
        }
        for (let at = 0; at < blen; at += chunk) {
          const len = Math.min(chunk, blen - at);
          const shape = [len];
          const chunks = this.decodeChunkWasm(a, sources, b.raw, b, at, len).map((data) => ({ data, shape }));
          const result = this.method.merge({
            tensorName: t.name,
            models: chunks.slice(0, k),
            base: t.base === undefined ? undefined : chunks[k],
            params: t.params,
            modelParams: t.modelParams,
            seed: this.spec.seed,
            out: a.f32(b.out, len),
          });
          this.encodeChunkWasm(a, t.outDtype, b, at, result.data);
        }
        this.writeBlockWasm(a, job, b, bs, blen);
      }
    } finally {
      a.release(mark);
    }
    return this.done(job, all, n);
  }

  /**
   * Multi-pass merge on arena buffers. The first pass reads every block from the files; the leading blocks (up to
   * the cache budget of raw input) stay in the arena, so later passes read only the rest again. Undefined when the
   * method has no streaming form for these parameters.
   */
  private runStreamingWasm(
    a: WasmArena,
    job: TensorJob,
    all: readonly PlannedInput[],
    n: number,
  ): JobResult | undefined {
    const t = job.tensor;
    const mark = a.mark();
    try {
      const chunk = Math.min(this.chunk, n);
      const stream = this.method.streaming?.(streamInputOf(t, { seed: this.spec.seed, wasmChunk: chunk }));
      if (stream === undefined) return undefined;
      const k = t.inputs.length;
      const sources = this.chunkSources(all);
      const block = this.blockOf(chunk, n);
      const b = this.wasmBuffers(a, sources, t.outDtype, chunk, block);
      // The cache holds whole blocks: per input one contiguous region, so a block is one read straight into it.
      const perElement = sources.reduce((sum, s) => sum + s.size, 0);
      const nBlocks = Math.ceil(n / block);
      const cachedBlocks =
        stream.passes === 0 ? 0 : Math.min(nBlocks, Math.floor(cacheBudget(this.spec) / (block * perElement)));
      const cached = Math.min(n, cachedBlocks * block);
      const cache = sources.map((s) => (cached > 0 ? a.alloc(cached * s.size) : 0));
      const cd = this.spec.computeDtype;
      const raw =
        stream.rawBf16 === true &&
        t.base !== undefined &&
        sources.every((s) => s.x.dtype === "BF16") &&
        (cd === undefined || cd === "BF16" || cd === "F32" || cd === "F64");
      // A sample, when the stream wants one: from the cache when the whole tensor fits (read in full first, which
      // pass 0 would do anyway), else with positional reads.
      let preloaded = false;
      if ((stream.sampleSize ?? 0) > 0 && stream.sample !== undefined) {
        if (cached === n) {
          for (let bs = 0; bs < n; bs += block) {
            const raws = sources.map((s, i) => cache[i]! + bs * s.size);
            this.readBlockWasm(a, sources, raws, bs, Math.min(block, n - bs));
          }
          preloaded = true;
        }
        stream.sample(this.readSampleWasm(a, sources, n, stream.sampleSize!, raw, k, preloaded ? cache : undefined));
      }
      const forEachChunk = (pass: number, fn: (c: StreamChunk, blockStart: number, at: number) => void) => {
        for (let bs = 0; bs < n; bs += block) {
          const blen = Math.min(block, n - bs);
          const inCache = bs < cached;
          const raws = inCache ? sources.map((s, i) => cache[i]! + bs * s.size) : b.raw;
          if ((pass === 0 && !preloaded) || !inCache) this.readBlockWasm(a, sources, raws, bs, blen);
          for (let at = 0; at < blen; at += chunk) {
            const len = Math.min(chunk, blen - at);
            if (raw) {
              // The stream reads the bf16 bits itself: no decoding (the float32 views are left as they are).
              const bits = raws.map((p) => a.u16(p + at * 2, len));
              const data = b.values.map((p) => a.f32(p, len));
              const bf16 = { models: bits.slice(0, k), base: bits[k]! };
              fn({ start: bs + at, models: data.slice(0, k), base: data[k], bf16 }, bs, at);
              continue;
            }
            const data = this.decodeChunkWasm(a, sources, raws, b, at, len);
            fn({ start: bs + at, models: data.slice(0, k), base: data[k] }, bs, at);
          }
          if (pass === stream.passes) this.writeBlockWasm(a, job, b, bs, blen);
        }
      };
      for (let pass = 0; pass < stream.passes; pass++) {
        forEachChunk(pass, (c) => stream.observe(pass, c));
        stream.endPass(pass);
      }
      const bf16Out = raw && t.outDtype === "BF16" && stream.emitBf16 !== undefined;
      forEachChunk(stream.passes, (c, _bs, at) => {
        if (bf16Out && stream.emitBf16!(c, b.outRaw + at * 2)) return;
        const out = a.f32(b.out, c.models[0]?.length ?? c.base!.length);
        stream.emit(c, out);
        this.encodeChunkWasm(a, t.outDtype, b, at, out);
      });
    } finally {
      a.release(mark);
    }
    return this.done(job, all, n);
  }

  /**
   * The sample a stream asked for (sample.ts): short runs spread over the tensor, copied from `cache` (every
   * input's whole tensor, raw) or else read with one positional read per run and input, concatenated in arena
   * buffers and decoded as chunks are (or left as raw bf16 bits).
   */
  private readSampleWasm(
    a: WasmArena,
    sources: readonly Source[],
    n: number,
    wanted: number,
    raw: boolean,
    k: number,
    cache: readonly number[] | undefined,
  ): StreamChunk {
    const starts = sampleStarts(n, wanted);
    const m = starts.length * SAMPLE_RUN;
    const rawPtrs = sources.map((s) => a.alloc(m * s.size));
    const valuePtrs = sources.map(() => a.alloc(m * 4));
    sources.forEach((s, i) => {
      const bytes = SAMPLE_RUN * s.size;
      starts.forEach((start, j) => {
        const dst = a.u8(rawPtrs[i]! + j * bytes, bytes);
        if (cache !== undefined) dst.set(a.u8(cache[i]! + start * s.size, bytes));
        else readExactSync(s.fd, dst, s.offset + start * s.size, s.file);
      });
    });
    const data = valuePtrs.map((p) => a.f32(p, m));
    if (raw) {
      const bits = rawPtrs.map((p) => a.u16(p, m));
      return { start: 0, models: data.slice(0, k), base: data[k], bf16: { models: bits.slice(0, k), base: bits[k]! } };
    }
    sources.forEach((s, i) => {
      this.decodeWasm(a, s.x.dtype, rawPtrs[i]!, valuePtrs[i]!, m);
    });
    const values = valuePtrs.map((p) => a.f32(p, m));
    return { start: 0, models: values.slice(0, k), base: values[k] };
  }

  private done(job: TensorJob, all: readonly PlannedInput[], n: number): JobResult {
    const bytesRead = all.reduce((s, x) => s + x.bytes, 0);
    return { index: job.index, bytesRead, bytesWritten: n * dtypeSize(job.tensor.outDtype) };
  }

  /** Wait until every block handed to the writer thread is written; throws a write's error. */
  flush(): void {
    this.blocks.drain();
  }

  /** Flush, then release everything (closing twice is harmless). */
  close(): void {
    try {
      this.blocks.close(); // throws a failed write's error, after the rest is closed
    } finally {
      for (const d of this.dirs.values()) d.close();
      for (const f of this.outFiles.values()) f.close();
      for (const fd of this.inFds.values()) closeFd(fd);
      this.inFds.clear();
      this.dirs.clear();
      this.outFiles.clear();
      // The arena's memory (chunk buffers, streaming cache) cannot shrink: drop it so a long-lived caller gets it
      // back.
      releaseWasmArena();
    }
  }
}
