import { fstatSync } from "node:fs";
import { FusionError } from "../errors.js";
import { dtypeSize, viewStorage } from "../tensor/dtype.js";
import { makeTensor, type Tensor } from "../tensor/tensor.js";
import { closeFd, openReadFd, readExactSync } from "./file-read.js";
import {
  parseHeaderLength,
  parseSafetensorsHeader,
  type SafetensorsHeader,
  type TensorInfo,
} from "./safetensors-header.js";

/**
 * An open safetensors file: the validated header, and tensors read one at a time with positional reads
 * (the file is never loaded whole). Reads are synchronous so they also serve worker threads; a tensor read
 * costs one pread of exactly its bytes.
 */
export class SafetensorsFile {
  private fd: number | undefined;

  private constructor(
    readonly path: string,
    fd: number,
    readonly header: SafetensorsHeader,
    readonly fileSize: number,
  ) {
    this.fd = fd;
  }

  static open(path: string): SafetensorsFile {
    const fd = openReadFd(path);
    try {
      const size = fstatSync(fd).size;
      const prefix = new Uint8Array(Math.min(8, size));
      readExactSync(fd, prefix, 0, path);
      const n = parseHeaderLength(prefix, size, path);
      const json = new Uint8Array(n);
      readExactSync(fd, json, 8, path);
      return new SafetensorsFile(path, fd, parseSafetensorsHeader(json, size, path), size);
    } catch (e) {
      closeFd(fd);
      throw e;
    }
  }

  get tensors(): readonly TensorInfo[] {
    return this.header.tensors;
  }

  get metadata(): Readonly<Record<string, string>> | undefined {
    return this.header.metadata;
  }

  names(): string[] {
    return this.header.tensors.map((t) => t.name);
  }

  has(name: string): boolean {
    return this.header.byName.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.header.byName.get(name);
    if (t === undefined) throw new FusionError("TENSOR_NOT_FOUND", "no such tensor", { file: this.path, tensor: name });
    return t;
  }

  /** Raw little-endian bytes of one tensor, into `into` when given (it must be at least that long). */
  readBytes(name: string, into?: Uint8Array): Uint8Array {
    const t = this.info(name);
    const len = t.end - t.begin;
    let target: Uint8Array;
    if (into === undefined) target = new Uint8Array(len);
    else if (into.length < len) {
      throw new FusionError("INVALID_ARGUMENT", `buffer of ${into.length} bytes is too small for ${len}`, {
        file: this.path,
        tensor: name,
      });
    } else target = into.subarray(0, len);
    if (this.fd === undefined) throw new FusionError("IO_ERROR", "file is closed", { file: this.path, tensor: name });
    readExactSync(this.fd, target, this.header.dataStart + t.begin, this.path);
    return target;
  }

  /** One tensor. With `into`, its storage is a view over that buffer (valid until the buffer is reused). */
  read(name: string, into?: Uint8Array): Tensor {
    const t = this.info(name);
    const bytes = this.readBytes(name, into);
    // A buffer allocated here starts at offset 0, so the view is aligned; a caller's buffer may be copied once.
    const aligned = bytes.byteOffset % dtypeSize(t.dtype) === 0 ? bytes : bytes.slice();
    return makeTensor(t.dtype, t.shape, viewStorage(t.dtype, aligned));
  }

  close(): void {
    if (this.fd !== undefined) closeFd(this.fd);
    this.fd = undefined;
  }
}

/** Read a whole (small) safetensors file into memory: tests and tools only; engines read lazily. */
export function loadSafetensors(path: string): {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string> | undefined;
} {
  const f = SafetensorsFile.open(path);
  try {
    const tensors = new Map<string, Tensor>();
    for (const t of f.tensors) tensors.set(t.name, f.read(t.name));
    return { tensors, metadata: f.metadata === undefined ? undefined : { ...f.metadata } };
  } finally {
    f.close();
  }
}
