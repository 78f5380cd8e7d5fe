import { FusionError, preview } from "../errors.js";

/** Safetensors dtype names. F8 types are read-only (decoded to float32). */
export const DTYPES = [
  "F64",
  "F32",
  "F16",
  "BF16",
  "I64",
  "I32",
  "I16",
  "I8",
  "U64",
  "U32",
  "U16",
  "U8",
  "BOOL",
  "F8_E4M3",
  "F8_E5M2",
] as const;
export type DType = (typeof DTYPES)[number];

/** Typed array that stores each dtype. F16/BF16 keep their raw bits in a Uint16Array; F8 in a Uint8Array. */
export interface DTypeStorage {
  F64: Float64Array;
  F32: Float32Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I64: BigInt64Array;
  I32: Int32Array;
  I16: Int16Array;
  I8: Int8Array;
  U64: BigUint64Array;
  U32: Uint32Array;
  U16: Uint16Array;
  U8: Uint8Array;
  BOOL: Uint8Array;
  F8_E4M3: Uint8Array;
  F8_E5M2: Uint8Array;
}
export type TypedArray = DTypeStorage[DType];

type ArrayCtor<T> = { new (length: number): T; new (buffer: ArrayBufferLike, byteOffset: number, length: number): T };

const STORAGE: { [K in DType]: ArrayCtor<DTypeStorage[K]> } = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U64: BigUint64Array,
  U32: Uint32Array,
  U16: Uint16Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
  F8_E4M3: Uint8Array,
  F8_E5M2: Uint8Array,
};

const SIZES: { [K in DType]: number } = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

const KNOWN = new Set<string>(DTYPES);

export function isDType(name: unknown): name is DType {
  return typeof name === "string" && KNOWN.has(name);
}

/** Parse a dtype name, throwing a typed error that names where it came from. */
export function parseDType(name: unknown, where: { file?: string; tensor?: string; key?: string } = {}): DType {
  if (isDType(name)) return name;
  throw new FusionError("UNSUPPORTED_DTYPE", `unknown dtype ${preview(name)} (known: ${DTYPES.join(", ")})`, where);
}

export function dtypeSize(dtype: DType): number {
  return SIZES[dtype];
}

export function isFloatDType(dtype: DType): boolean {
  return dtype === "F64" || dtype === "F32" || dtype === "F16" || dtype === "BF16" || dtype.startsWith("F8");
}

/** F8 formats are decoded on read but never written. */
export function isWritableDType(dtype: DType): boolean {
  return dtype !== "F8_E4M3" && dtype !== "F8_E5M2";
}

/** A fresh zeroed array of `length` elements for `dtype`. */
export function allocStorage<D extends DType>(dtype: D, length: number): DTypeStorage[D] {
  return new STORAGE[dtype](length) as DTypeStorage[D];
}

/**
 * View little-endian bytes as the storage array of `dtype` without copying when aligned; copies when the byte
 * offset is not a multiple of the element size (typed arrays require alignment). Assumes a little-endian host.
 */
export function viewStorage<D extends DType>(dtype: D, bytes: Uint8Array): DTypeStorage[D] {
  const size = SIZES[dtype];
  if (bytes.byteLength % size !== 0) {
    throw new FusionError("INVALID_ARGUMENT", `${bytes.byteLength} bytes is not a whole number of ${dtype} elements`);
  }
  const ctor = STORAGE[dtype];
  const n = bytes.byteLength / size;
  if (bytes.byteOffset % size === 0) return new ctor(bytes.buffer, bytes.byteOffset, n) as DTypeStorage[D];
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new ctor(copy.buffer, 0, n) as DTypeStorage[D];
}

/** The bytes of a storage array (a view, no copy). */
export function storageBytes(data: TypedArray): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new FusionError("NOT_SUPPORTED", "fusionkit needs a little-endian host");
}
