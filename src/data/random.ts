/** Seeded permutations for data splits and batching, on pure-rand's xoroshiro128+. */
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import type { RandomGenerator } from "pure-rand/types/RandomGenerator";
import { FusionError } from "../errors.js";

export type { RandomGenerator };

/** A 32-bit seed derived from a seed and a stream number (murmur3's finaliser over both), for independent streams. */
export function mixSeed(seed: number, stream: number): number {
  let h = (Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul(stream | 0, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

/** A generator for (seed, stream); the same pair always gives the same sequence. */
export function seededGenerator(seed: number, stream = 0): RandomGenerator {
  return xoroshiro128plus(mixSeed(seed, stream));
}

/** Fisher-Yates shuffle of 0..count-1 driven by `rng` (which advances). */
export function permutation(count: number, rng: RandomGenerator): Uint32Array {
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = i;
  for (let i = count - 1; i > 0; i--) {
    const j = uniformInt(rng, 0, i);
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return out;
}

/** Throws an INVALID_ARGUMENT FusionError naming `key` unless `value` is an integer in [min, max]. */
export function checkInteger(value: unknown, key: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new FusionError("INVALID_ARGUMENT", `must be an integer in [${min}, ${max}], got ${String(value)}`, { key });
  }
  return value;
}
