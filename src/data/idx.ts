/**
 * IDX files (the MNIST / Fashion-MNIST container): a 4-byte magic `0 0 <dtype> <ndims>`, `ndims` big-endian uint32
 * dimensions, then the elements in big-endian row-major order. Files may be gzipped (detected by the gzip magic).
 * The parser refuses everything it does not expect: a wrong magic, an unknown dtype, zero dimensions, a truncated
 * header or body, trailing bytes.
 */
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { FusionError } from "../errors.js";

export type IdxDtype = "uint8" | "int8" | "int16" | "int32" | "float32" | "float64";
export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxArray {
  dtype: IdxDtype;
  dims: number[];
  /** The elements in row-major order, decoded to native endianness (uint8 data is a view, not a copy). */
  data: IdxData;
}

/** The IDX dtype byte of each dtype, and its element size. */
export const IDX_DTYPES: ReadonlyMap<number, { dtype: IdxDtype; size: number }> = new Map([
  [0x08, { dtype: "uint8", size: 1 }],
  [0x09, { dtype: "int8", size: 1 }],
  [0x0b, { dtype: "int16", size: 2 }],
  [0x0c, { dtype: "int32", size: 4 }],
  [0x0d, { dtype: "float32", size: 4 }],
  [0x0e, { dtype: "float64", size: 8 }],
]);

const MAX_ELEMENTS = 2 ** 31;

/** True when `bytes` starts with the gzip magic 1f 8b. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Reads and parses an IDX file, gunzipping it first when it is gzipped. */
export function readIdx(path: string): IdxArray {
  let raw: Uint8Array;
  try {
    raw = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FusionError(
      code === "ENOENT" ? "FILE_NOT_FOUND" : "IO_ERROR",
      code === "ENOENT" ? "no such file" : `cannot read: ${(e as Error).message}`,
      { file: path, cause: e },
    );
  }
  return parseIdx(raw, path);
}

/** Parses IDX bytes (gzipped or not); `file` names the source in errors. */
export function parseIdx(bytes: Uint8Array, file: string): IdxArray {
  if (isGzip(bytes)) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new FusionError("IO_ERROR", `corrupt gzip stream: ${(e as Error).message}`, { file, cause: e });
    }
  }
  if (bytes.length < 4) {
    throw new FusionError("IO_ERROR", `truncated IDX file: ${bytes.length} bytes, shorter than the 4-byte magic`, {
      file,
    });
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const hex = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join(" ");
    throw new FusionError("IO_ERROR", `not an IDX file: magic ${hex} does not start with 00 00`, { file });
  }
  const code = bytes[2]!;
  const kind = IDX_DTYPES.get(code);
  if (kind === undefined) {
    throw new FusionError(
      "UNSUPPORTED_DTYPE",
      `unsupported IDX dtype byte 0x${code.toString(16).padStart(2, "0")} (known: 08 09 0b 0c 0d 0e)`,
      { file },
    );
  }
  const ndims = bytes[3]!;
  if (ndims === 0) throw new FusionError("SHAPE_MISMATCH", "IDX file declares 0 dimensions", { file });
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) {
    throw new FusionError(
      "IO_ERROR",
      `truncated IDX file: ${bytes.length} bytes, shorter than the ${headerBytes}-byte header of ${ndims} dimensions`,
      { file },
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < ndims; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  if (count > MAX_ELEMENTS) {
    throw new FusionError("SHAPE_MISMATCH", `IDX dims [${dims.join(", ")}] exceed ${MAX_ELEMENTS} elements`, { file });
  }
  const expected = headerBytes + count * kind.size;
  if (bytes.length < expected) {
    throw new FusionError(
      "IO_ERROR",
      `truncated IDX file: dims [${dims.join(", ")}] of ${kind.dtype} need ${expected} bytes, found ${bytes.length}`,
      { file },
    );
  }
  if (bytes.length > expected) {
    throw new FusionError(
      "SHAPE_MISMATCH",
      `IDX size mismatch: dims [${dims.join(", ")}] of ${kind.dtype} need ${expected} bytes, found ${bytes.length} ` +
        `(${bytes.length - expected} trailing)`,
      { file },
    );
  }
  return { dtype: kind.dtype, dims, data: decode(view, headerBytes, count, kind.dtype, bytes) };
}

function decode(view: DataView, offset: number, n: number, dtype: IdxDtype, bytes: Uint8Array): IdxData {
  switch (dtype) {
    case "uint8":
      return new Uint8Array(bytes.buffer, bytes.byteOffset + offset, n);
    case "int8":
      return new Int8Array(bytes.buffer, bytes.byteOffset + offset, n);
    case "int16": {
      const out = new Int16Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getInt16(offset + 2 * i, false);
      return out;
    }
    case "int32": {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getInt32(offset + 4 * i, false);
      return out;
    }
    case "float32": {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(offset + 4 * i, false);
      return out;
    }
    case "float64": {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(offset + 8 * i, false);
      return out;
    }
  }
}

/** Encodes an IDX file (uncompressed; gzip the result for .gz). For tests and for writing derived datasets. */
export function encodeIdx(dtype: IdxDtype, dims: readonly number[], data: ArrayLike<number>): Uint8Array {
  const [code, { size }] = [...IDX_DTYPES].find(([, k]) => k.dtype === dtype)!;
  const count = dims.reduce((a, b) => a * b, 1);
  if (data.length !== count) {
    throw new FusionError("SHAPE_MISMATCH", `encodeIdx: ${data.length} elements for dims [${dims.join(", ")}]`);
  }
  const header = 4 + 4 * dims.length;
  const out = new Uint8Array(header + count * size);
  const view = new DataView(out.buffer);
  out[2] = code;
  out[3] = dims.length;
  for (let i = 0; i < dims.length; i++) view.setUint32(4 + 4 * i, dims[i]!, false);
  for (let i = 0; i < count; i++) {
    const v = data[i]!;
    const at = header + i * size;
    if (dtype === "uint8") view.setUint8(at, v);
    else if (dtype === "int8") view.setInt8(at, v);
    else if (dtype === "int16") view.setInt16(at, v, false);
    else if (dtype === "int32") view.setInt32(at, v, false);
    else if (dtype === "float32") view.setFloat32(at, v, false);
    else view.setFloat64(at, v, false);
  }
  return out;
}
