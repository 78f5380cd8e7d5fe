/**
 * Exact bit-level codecs between float32 and the 16- and 8-bit float formats, round-to-nearest-even,
 * with subnormals, signed zeros, infinities and NaN preserved (NaN payloads are kept where they fit and quieted).
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 value -> IEEE binary16 bits. */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const mant = u & 0x7fffff;
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  const halfExp = exp - 112; // rebias 127 -> 15
  if (halfExp >= 0x1f) return sign | 0x7c00;
  if (halfExp <= 0) {
    const shift = 14 - halfExp; // 14..; result is a subnormal count of 2^-24
    if (shift > 24) return sign;
    const m = mant | 0x800000;
    let k = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (k & 1) === 1)) k++;
    return sign | k;
  }
  let h = (halfExp << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry rolls into the exponent (up to Inf)
  return sign | h;
}

let f16Table: Float32Array | undefined;

/** Lookup table: binary16 bits -> float32 value (exact). */
export function f16Table32(): Float32Array {
  if (f16Table !== undefined) return f16Table;
  const t = new Float32Array(65536);
  const bits = new Uint32Array(t.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0x1f) bits[h] = sign | 0x7f800000 | (mant << 13);
    else if (exp === 0) t[h] = (sign ? -1 : 1) * mant * 2 ** -24;
    else bits[h] = sign | ((exp + 112) << 23) | (mant << 13);
  }
  f16Table = t;
  return t;
}

export function f16BitsToF32(h: number): number {
  return f16Table32()[h & 0xffff]!;
}

/** float32 value -> bfloat16 bits (round-to-nearest-even; NaN stays NaN, quieted). */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToF32(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0]!;
}

let e4m3Table: Float32Array | undefined;
let e5m2Table: Float32Array | undefined;

/** float8 E4M3FN (bias 7, no infinities, S.1111.111 is NaN) -> float32 lookup table. */
export function f8E4M3Table(): Float32Array {
  if (e4m3Table !== undefined) return e4m3Table;
  const t = new Float32Array(256);
  for (let b = 0; b < 256; b++) {
    const s = b & 0x80 ? -1 : 1;
    const exp = (b >>> 3) & 0xf;
    const mant = b & 7;
    if (exp === 0xf && mant === 7) t[b] = Number.NaN;
    else if (exp === 0) t[b] = s * mant * 2 ** -9;
    else t[b] = s * (1 + mant / 8) * 2 ** (exp - 7);
  }
  e4m3Table = t;
  return t;
}

/** float8 E5M2 (bias 15, IEEE-style infinities and NaN) -> float32 lookup table; it is the top byte of a binary16. */
export function f8E5M2Table(): Float32Array {
  if (e5m2Table !== undefined) return e5m2Table;
  const t = new Float32Array(256);
  const half = f16Table32();
  for (let b = 0; b < 256; b++) t[b] = half[b << 8]!;
  e5m2Table = t;
  return t;
}
