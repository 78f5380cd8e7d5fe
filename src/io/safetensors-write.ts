import { fdatasync } from "node:fs";
import { FusionError, preview } from "../errors.js";
import { type DType, dtypeSize, storageBytes, type TypedArray } from "../tensor/dtype.js";
import { formatShape, isValidShape, numel, type Tensor } from "../tensor/tensor.js";
import { commitFile, discardFile, openWriteFd, tempPathFor, writeAllSync } from "./atomic.js";

/** What the header needs to know of a tensor before its data exists. */
export interface TensorSpec {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

export interface EncodedHeader {
  /** The 8-byte length prefix plus the JSON header, space-padded so the data section starts aligned (encodeHeader). */
  readonly bytes: Uint8Array;
  readonly offsets: ReadonlyMap<string, readonly [number, number]>;
  readonly dataLength: number;
}

export function tensorBytes(spec: TensorSpec): number {
  return numel(spec.shape) * dtypeSize(spec.dtype);
}

/**
 * Lay tensors out in the given order and encode the header. Deterministic: same specs, same bytes. The header is
 * padded with spaces (as the format allows) so the data section starts at a multiple of `align` bytes (8, as
 * Hugging Face's writer does, or more).
 */
export function encodeHeader(
  specs: readonly TensorSpec[],
  metadata: Readonly<Record<string, string>> | undefined,
  file: string,
  align = 8,
): EncodedHeader {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new FusionError("INVALID_ARGUMENT", "metadata values must be strings", {
          file,
          key: `__metadata__.${k}`,
        });
      }
    }
    header.__metadata__ = { ...metadata };
  }
  const offsets = new Map<string, readonly [number, number]>();
  let cursor = 0;
  for (const s of specs) {
    if (s.name === "__metadata__")
      throw new FusionError("INVALID_ARGUMENT", "reserved tensor name", { file, tensor: s.name });
    if (offsets.has(s.name))
      throw new FusionError("DUPLICATE_TENSOR", "tensor written twice", { file, tensor: s.name });
    if (!isValidShape(s.shape)) {
      throw new FusionError("INVALID_ARGUMENT", `invalid shape ${preview(s.shape)}`, { file, tensor: s.name });
    }
    const end = cursor + tensorBytes(s);
    offsets.set(s.name, [cursor, end]);
    header[s.name] = { dtype: s.dtype, shape: [...s.shape], data_offsets: [cursor, end] };
    cursor = end;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil((8 + json.length) / align) * align - 8;
  const bytes = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded), true);
  bytes.set(json, 8);
  return { bytes, offsets, dataLength: cursor };
}

/**
 * Streams tensors into one safetensors file. The header is computed from the specs first; each tensor's bytes go
 * to their final offset as they arrive (any order, so parallel producers need no reordering). The file is written
 * under a temporary name and renamed only by `finish()` once every tensor has arrived; `abort()` removes it.
 */
export class SafetensorsWriter {
  private fd: number | undefined;
  private readonly pending: Map<string, TensorSpec>;
  private readonly dataStart: number;

  private constructor(
    readonly path: string,
    private readonly tmp: string,
    fd: number,
    private readonly header: EncodedHeader,
    specs: readonly TensorSpec[],
  ) {
    this.fd = fd;
    this.pending = new Map(specs.map((s) => [s.name, s]));
    this.dataStart = header.bytes.length;
  }

  /** `align`: the data section's alignment (encodeHeader). */
  static create(
    path: string,
    specs: readonly TensorSpec[],
    metadata?: Readonly<Record<string, string>>,
    align = 8,
  ): SafetensorsWriter {
    const header = encodeHeader(specs, metadata, path, align);
    const tmp = tempPathFor(path);
    const fd = openWriteFd(tmp);
    try {
      writeAllSync(fd, header.bytes, 0, tmp);
    } catch (e) {
      discardFile(fd, tmp);
      throw e;
    }
    return new SafetensorsWriter(path, tmp, fd, header, specs);
  }

  get remaining(): number {
    return this.pending.size;
  }

  /**
   * Start writing the data so far to disk in the background (fdatasync on libuv's thread pool), so that the
   * final flush in `finish()` has little left to do. Resolves when done; an error here is ignored, because
   * `finish()` flushes again and reports it there.
   */
  writeback(): Promise<void> {
    const fd = this.fd;
    if (fd === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      fdatasync(fd, () => resolve());
    });
  }

  /** Write one tensor's data (storage of its dtype, or its raw little-endian bytes). */
  write(name: string, data: TypedArray | Uint8Array): void {
    const spec = this.pending.get(name);
    if (spec === undefined) {
      const known = this.header.offsets.has(name);
      throw new FusionError(
        known ? "DUPLICATE_TENSOR" : "TENSOR_NOT_FOUND",
        known ? "tensor written twice" : "not in the header",
        {
          file: this.path,
          tensor: name,
        },
      );
    }
    const bytes = storageBytes(data);
    const [begin, end] = this.header.offsets.get(name)!;
    if (bytes.length !== end - begin) {
      throw new FusionError(
        "SHAPE_MISMATCH",
        `${bytes.length} bytes given, ${spec.dtype} ${formatShape(spec.shape)} needs ${end - begin}`,
        { file: this.path, tensor: name },
      );
    }
    if (this.fd === undefined) throw new FusionError("IO_ERROR", "writer is closed", { file: this.path, tensor: name });
    writeAllSync(this.fd, bytes, this.dataStart + begin, this.tmp);
    this.pending.delete(name);
  }

  /**
   * For producers that write the bytes themselves (worker threads with their own file descriptor): the
   * temporary file and absolute offset of a tensor. Call `markWritten` once its bytes are in place.
   */
  location(name: string): { file: string; offset: number; bytes: number } {
    const at = this.header.offsets.get(name);
    if (at === undefined)
      throw new FusionError("TENSOR_NOT_FOUND", "not in the header", { file: this.path, tensor: name });
    return { file: this.tmp, offset: this.dataStart + at[0], bytes: at[1] - at[0] };
  }

  markWritten(name: string): void {
    if (!this.pending.delete(name)) {
      throw new FusionError("DUPLICATE_TENSOR", "tensor marked written twice or unknown", {
        file: this.path,
        tensor: name,
      });
    }
  }

  writeTensor(name: string, t: Tensor): void {
    const spec = this.pending.get(name);
    if (spec !== undefined && spec.dtype !== t.dtype) {
      throw new FusionError("DTYPE_MISMATCH", `header says ${spec.dtype}, tensor is ${t.dtype}`, {
        file: this.path,
        tensor: name,
      });
    }
    this.write(name, t.data);
  }

  /** Check every tensor arrived, flush, and rename into place. */
  finish(): void {
    if (this.pending.size > 0) {
      const missing = [...this.pending.keys()];
      this.abort();
      throw new FusionError("TENSOR_NOT_FOUND", `${missing.length} tensor(s) never written`, {
        file: this.path,
        tensor: missing[0],
      });
    }
    const fd = this.fd;
    if (fd === undefined) throw new FusionError("IO_ERROR", "writer is closed", { file: this.path });
    this.fd = undefined;
    try {
      commitFile(fd, this.tmp, this.path);
    } catch (e) {
      discardFile(undefined, this.tmp);
      throw e;
    }
  }

  abort(): void {
    discardFile(this.fd, this.tmp);
    this.fd = undefined;
  }
}

/** Write named tensors to one file, in the given order. */
export function saveSafetensors(
  path: string,
  tensors: Iterable<readonly [string, Tensor]>,
  metadata?: Readonly<Record<string, string>>,
): void {
  const list = [...tensors];
  const w = SafetensorsWriter.create(
    path,
    list.map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape })),
    metadata,
  );
  try {
    for (const [name, t] of list) w.writeTensor(name, t);
  } catch (e) {
    w.abort();
    throw e;
  }
  w.finish();
}
