/**
 * Fast seeded random fills for synthetic data (demos, tests, benchmarks). A 32-bit hash of a string picks the
 * stream, so a tensor's values depend only on (seed, name) and never on generation order.
 */

/** FNV-1a over the UTF-16 code units, mixed with a numeric seed: a well-spread 32-bit stream key. */
export function hashSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return mix32(h ^ Math.imul(seed, 0x9e3779b9));
}

function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * Fill `out` with approximately standard-normal values times `std` plus `out`'s current content when `add` is set.
 * xorshift32 driven, Irwin-Hall of 4 uniforms (mean 0, variance 1 after scaling): cheap, smooth, deterministic.
 */
export function fillNormal(out: Float32Array, key: number, std: number, add = false): Float32Array {
  let s = key === 0 ? 0x6d2b79f5 : key >>> 0;
  const scale = (std * Math.sqrt(3)) / 2 ** 31; // each uniform in [-2^31, 2^31) ; sum of 4 has variance 4/3 * 2^62
  const n = out.length;
  for (let i = 0; i < n; i++) {
    let acc = 0;
    for (let k = 0; k < 4; k++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      acc += s | 0;
    }
    const v = acc * scale * 0.5;
    out[i] = add ? out[i]! + v : v;
  }
  return out;
}
