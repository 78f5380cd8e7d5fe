// The numeric kernels behind sparsification, checked against naive sorts (including exact ties).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  bernoulliFill,
  keyedU32,
  lineRankNorm,
  magnitudeAt,
  magnitudeWindowMask,
  topKMagnitudeMask,
} from "../../src/tensor/kernels.js";

/** Small deterministic generator for test data (not the library's PRNG). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** Values with many exact ties (and zeros, and both signs of equal magnitudes). */
function tiedValues(n: number, seed: number, levels = 7): Float32Array {
  const r = lcg(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (Math.floor(r() * levels) - (levels >> 1)) * 0.25 * (r() < 0.5 ? 1 : -1);
  return out;
}

/** Stable order of indices by |x| ascending (ties by index). */
function ascendingOrder(x: Float32Array): number[] {
  return Array.from(x.keys()).sort((a, b) => Math.abs(x[a]!) - Math.abs(x[b]!) || a - b);
}

describe("magnitude selection", () => {
  test("magnitudeAt finds the key at each sorted position", () => {
    const x = tiedValues(200, 1);
    const order = ascendingOrder(x);
    for (let p = 0; p < x.length; p += 7) {
      const r = magnitudeAt(x, p);
      const v = Math.abs(x[order[p]!]!);
      assert.equal(new Float32Array(new Uint32Array([r.key]).buffer)[0], v);
      assert.equal(r.below, order.filter((i) => Math.abs(x[i]!) < v).length);
    }
  });

  test("topKMagnitudeMask equals a stable descending sort (lower index wins a tie)", () => {
    for (const seed of [1, 2, 3]) {
      const x = tiedValues(257, seed);
      const desc = Array.from(x.keys()).sort((a, b) => Math.abs(x[b]!) - Math.abs(x[a]!) || a - b);
      for (const k of [0, 1, 5, 64, 128, 200, 256, 257, 300]) {
        const want = new Uint8Array(x.length);
        for (const i of desc.slice(0, k)) want[i] = 1;
        assert.deepEqual(topKMagnitudeMask(x, k, new Uint8Array(x.length)), want, `seed ${seed} k ${k}`);
      }
    }
  });

  test("magnitudeWindowMask equals positions [from, to) of a stable ascending sort", () => {
    for (const seed of [4, 5]) {
      const x = tiedValues(150, seed, 5);
      const order = ascendingOrder(x);
      for (const [from, to] of [
        [0, 150],
        [0, 10],
        [10, 140],
        [37, 38],
        [60, 61],
        [149, 150],
        [100, 100],
        [120, 30],
      ] as const) {
        const want = new Uint8Array(x.length);
        for (const i of order.slice(from, Math.max(from, to))) want[i] = 1;
        assert.deepEqual(magnitudeWindowMask(x, from, to, new Uint8Array(x.length)), want, `[${from}, ${to})`);
      }
    }
  });

  test("selection handles large arrays with distinct values", () => {
    const r = lcg(9);
    const x = new Float32Array(100_000).map(() => r() * 2 - 1);
    const k = 12_345;
    const mask = topKMagnitudeMask(x, k, new Uint8Array(x.length));
    const sorted = Float32Array.from(x, Math.abs).sort();
    const threshold = sorted[x.length - k]!;
    let kept = 0;
    for (let i = 0; i < x.length; i++) {
      kept += mask[i]!;
      assert.equal(mask[i] === 1, Math.abs(x[i]!) >= threshold);
    }
    assert.equal(kept, k);
  });
});

describe("lineRankNorm", () => {
  const naive = (x: Float32Array, outer: number, len: number, inner: number) => {
    const out = new Float32Array(x.length);
    for (let o = 0; o < outer; o++) {
      for (let c = 0; c < inner; c++) {
        const idx = Array.from({ length: len }, (_, r) => o * len * inner + r * inner + c);
        idx.sort((a, b) => Math.abs(x[a]!) - Math.abs(x[b]!) || a - b);
        idx.forEach((i, rank) => {
          out[i] = len === 1 ? 0.5 : rank / (len - 1);
        });
      }
    }
    return out;
  };
  for (const [outer, len, inner] of [
    [1, 40, 1],
    [6, 9, 1],
    [3, 5, 4],
    [4, 1, 2],
  ] as const) {
    test(`ranks along dim 1 of [${outer}, ${len}, ${inner}] (ties stable)`, () => {
      const x = tiedValues(outer * len * inner, outer + len + inner);
      assert.deepEqual(lineRankNorm(x, outer, len, inner, new Float32Array(x.length)), naive(x, outer, len, inner));
    });
  }
});

describe("keyed counter-based Bernoulli draws", () => {
  const key = { k0: 0x12345678, k1: 0x9abcdef0 };

  test("each element depends only on (key, index): chunked fills equal one fill", () => {
    const whole = bernoulliFill(key, 0.3, new Uint8Array(10_000));
    const chunks = new Uint8Array(10_000);
    for (let s = 0; s < 10_000; s += 999) {
      const part = new Uint8Array(Math.min(999, 10_000 - s));
      bernoulliFill(key, 0.3, part, s);
      chunks.set(part, s);
    }
    assert.deepEqual(chunks, whole);
    for (let i = 0; i < 10_000; i++) assert.equal(whole[i] === 1, keyedU32(key, i) < Math.ceil(0.3 * 2 ** 32));
  });

  test("constant and per-element probabilities agree; extremes are exact", () => {
    const n = 5000;
    const a = bernoulliFill(key, 0.25, new Uint8Array(n));
    const b = bernoulliFill(key, new Float32Array(n).fill(0.25), new Uint8Array(n));
    assert.deepEqual(a, b);
    assert.ok(bernoulliFill(key, 0, new Uint8Array(n)).every((v) => v === 0));
    assert.ok(bernoulliFill(key, 1, new Uint8Array(n)).every((v) => v === 1));
  });

  test("kept fraction and lag-1 independence look Bernoulli", () => {
    const n = 200_000;
    // 0.002: the top byte ties the threshold's in every draw it keeps (the fine stream decides them).
    for (const p of [0.002, 0.05, 0.5, 0.9]) {
      const m = bernoulliFill(key, p, new Uint8Array(n));
      let k = 0;
      let both = 0;
      for (let i = 0; i < n; i++) {
        k += m[i]!;
        if (i > 0 && m[i] === 1 && m[i - 1] === 1) both++;
      }
      const sd = Math.sqrt((p * (1 - p)) / n);
      assert.ok(Math.abs(k / n - p) < 5 * sd, `p ${p}: kept ${k / n}`);
      assert.ok(Math.abs(both / (n - 1) - p * p) < 5 * Math.sqrt((p * p * (1 - p * p)) / n) + 1e-3, `p ${p}: pairs`);
    }
  });
});
