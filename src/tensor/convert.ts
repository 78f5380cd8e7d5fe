import { FusionError } from "../errors.js";
import { allocStorage, type DType, type DTypeStorage, type TypedArray } from "./dtype.js";
import { f8E4M3Table, f8E5M2Table, f16Table32, f32ToF16Bits } from "./float16.js";
import { makeTensor, type Tensor } from "./tensor.js";

// One monomorphic loop per dtype: a shared per-element callback would go megamorphic in V8.

const F32_BITS = new Float32Array(1);
const F32_U32 = new Uint32Array(F32_BITS.buffer);

/** Decode `src` (storage of `dtype`) into float32 `out` (same length). Integers convert exactly where float32 can. */
export function decodeToF32(dtype: DType, src: TypedArray, out: Float32Array): Float32Array {
  const n = src.length;
  if (out.length !== n)
    throw new FusionError("INVALID_ARGUMENT", `decode: output has ${out.length} elements, need ${n}`);
  switch (dtype) {
    case "F32":
      out.set(src as Float32Array);
      break;
    case "BF16": {
      const s = src as Uint16Array;
      const o = new Uint32Array(out.buffer, out.byteOffset, n);
      for (let i = 0; i < n; i++) o[i] = s[i]! << 16;
      break;
    }
    case "F16": {
      const s = src as Uint16Array;
      const t = f16Table32();
      for (let i = 0; i < n; i++) out[i] = t[s[i]!]!;
      break;
    }
    case "F8_E4M3": {
      const s = src as Uint8Array;
      const t = f8E4M3Table();
      for (let i = 0; i < n; i++) out[i] = t[s[i]!]!;
      break;
    }
    case "F8_E5M2": {
      const s = src as Uint8Array;
      const t = f8E5M2Table();
      for (let i = 0; i < n; i++) out[i] = t[s[i]!]!;
      break;
    }
    case "I64":
    case "U64": {
      const s = src as BigInt64Array | BigUint64Array;
      for (let i = 0; i < n; i++) out[i] = Number(s[i]!);
      break;
    }
    case "BOOL": {
      const s = src as Uint8Array;
      for (let i = 0; i < n; i++) out[i] = s[i]! === 0 ? 0 : 1;
      break;
    }
    default:
      // F64 and the 8/16/32-bit integer arrays: a typed-array set converts with float32 rounding.
      out.set(src as Float64Array);
  }
  return out;
}

/** Round a float to an integer the way PyTorch's `.to(int)` does: toward zero; NaN -> 0; saturate at the range. */
function toInt(x: number, lo: number, hi: number): number {
  if (Number.isNaN(x)) return 0;
  const t = Math.trunc(x);
  return t < lo ? lo : t > hi ? hi : t;
}

/** Encode float32 `src` into storage of `dtype` (`out`, same length). */
export function encodeFromF32<D extends DType>(src: Float32Array, dtype: D, out: DTypeStorage[D]): DTypeStorage[D] {
  const n = src.length;
  if (out.length !== n)
    throw new FusionError("INVALID_ARGUMENT", `encode: output has ${out.length} elements, need ${n}`);
  switch (dtype) {
    case "F32":
      (out as Float32Array).set(src);
      break;
    case "F64":
      (out as Float64Array).set(src);
      break;
    case "BF16": {
      const o = out as Uint16Array;
      const s = new Uint32Array(src.buffer, src.byteOffset, n);
      for (let i = 0; i < n; i++) {
        const u = s[i]!;
        o[i] = (u & 0x7fffffff) > 0x7f800000 ? (u >>> 16) | 0x40 : (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
      }
      break;
    }
    case "F16": {
      const o = out as Uint16Array;
      for (let i = 0; i < n; i++) o[i] = f32ToF16Bits(src[i]!);
      break;
    }
    case "I64": {
      const o = out as BigInt64Array;
      for (let i = 0; i < n; i++) o[i] = BigInt(toInt(src[i]!, -(2 ** 63), 2 ** 63 - 1024));
      break;
    }
    case "U64": {
      const o = out as BigUint64Array;
      for (let i = 0; i < n; i++) o[i] = BigInt(toInt(src[i]!, 0, 2 ** 64 - 2048));
      break;
    }
    case "I32": {
      const o = out as Int32Array;
      for (let i = 0; i < n; i++) o[i] = toInt(src[i]!, -2147483648, 2147483647);
      break;
    }
    case "U32": {
      const o = out as Uint32Array;
      for (let i = 0; i < n; i++) o[i] = toInt(src[i]!, 0, 4294967295);
      break;
    }
    case "I16": {
      const o = out as Int16Array;
      for (let i = 0; i < n; i++) o[i] = toInt(src[i]!, -32768, 32767);
      break;
    }
    case "U16": {
      const o = out as Uint16Array;
      for (let i = 0; i < n; i++) o[i] = toInt(src[i]!, 0, 65535);
      break;
    }
    case "I8": {
      const o = out as Int8Array;
      for (let i = 0; i < n; i++) o[i] = toInt(src[i]!, -128, 127);
      break;
    }
    case "U8": {
      const o = out as Uint8Array;
      for (let i = 0; i < n; i++) o[i] = toInt(src[i]!, 0, 255);
      break;
    }
    case "BOOL": {
      const o = out as Uint8Array;
      for (let i = 0; i < n; i++) o[i] = src[i]! !== 0 ? 1 : 0;
      break;
    }
    default:
      throw new FusionError("UNSUPPORTED_DTYPE", `cannot encode to ${dtype} (read-only format)`);
  }
  return out;
}

/** The tensor's values as float32 (a fresh array; F32 input is copied so callers may mutate). */
export function toFloat32(t: Tensor): Float32Array {
  return decodeToF32(t.dtype, t.data, new Float32Array(t.data.length));
}

/** A tensor of `dtype` holding `values` (rounded to nearest even for F16/BF16). */
export function fromFloat32<D extends DType>(values: Float32Array, dtype: D, shape: readonly number[]): Tensor<D> {
  return makeTensor(dtype, shape, encodeFromF32(values, dtype, allocStorage(dtype, values.length)));
}

/** Convert a tensor to another dtype through float32 (identity for equal dtypes). */
export function castTensor<D extends DType>(t: Tensor, dtype: D): Tensor<D> {
  if (t.dtype === (dtype as DType)) return t as unknown as Tensor<D>;
  return fromFloat32(toFloat32(t), dtype, t.shape);
}

/** Scalar helpers (tests, debugging): float32 value <-> bits. */
export function f32Bits(x: number): number {
  F32_BITS[0] = x;
  return F32_U32[0]!;
}
