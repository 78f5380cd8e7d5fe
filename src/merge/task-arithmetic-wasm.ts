// The streaming task-arithmetic merge (task-arithmetic-stream.ts) on WebAssembly SIMD kernels, for chunks that
// live in the wasm arena (the engine's buffers). Same passes, same statistics, same output bits:
//
//   pass 0: |delta| high-bits histograms (magnitude); L1 sums under the drawn mask (random, rescale)
//   pass 1: low-bits histograms inside each threshold bin -> threshold key and how many ties to keep
//   pass 2: L1 sums under the top-k mask (magnitude, rescale)
//   emit:   keep-masks (top-k, or Bernoulli draws), then the sign-consensus or plain combine
//
// Deltas are never stored: every kernel recomputes x - b from the chunk (one float32 subtraction per element).
// All arena memory (histograms, masks, L1 accumulators) is allocated here, when the stream is created; views are
// taken per call, after which nothing allocates (see arena.ts).

import type { Key64 } from "../tensor/kernels.js";
import type { WasmArena } from "../wasm/arena.js";
import { type L1Sums, l1After, rescaleFromNorms } from "./sparsify.js";
import type { StreamChunk, StreamingMerge } from "./types.js";

export type WasmModel =
  | { kind: "dense" }
  | { kind: "magnitude"; take: number }
  | { kind: "random"; p: number; key: Key64 };

export interface WasmStreamOptions {
  models: readonly WasmModel[];
  n: number;
  w: readonly number[];
  rescale: boolean;
  normalize: boolean;
  lambda: number;
  consensus: boolean;
  /** Largest chunk the engine will pass. */
  maxChunk: number;
}

const HI_BINS = 1 << 15;
/** Bytes of bit-packed Bernoulli masks kept from the statistics pass for the output pass (drawing costs more). */
const MASK_CACHE_BYTES = 16 << 20;
const LO_BINS = 1 << 16;

interface Sel {
  hist: number;
  lo: number;
  bin: number;
  below: number;
  key: number;
  take: number;
  tieLeft: number;
}

export function wasmTaskArithmeticStream(a: WasmArena, o: WasmStreamOptions): StreamingMerge {
  const k = o.models.length;
  const n = o.n;
  const anyMagnitude = o.models.some((m) => m.kind === "magnitude");
  const anyRandom = o.models.some((m) => m.kind === "random");
  const passes = anyMagnitude ? (o.rescale ? 3 : 2) : o.rescale && anyRandom ? 1 : 0;
  const sels: (Sel | null)[] = o.models.map((m) =>
    m.kind === "magnitude"
      ? { hist: a.alloc(HI_BINS * 4), lo: a.alloc(LO_BINS * 4), bin: 0, below: 0, key: 0, take: m.take, tieLeft: 0 }
      : null,
  );
  for (const s of sels) if (s !== null) a.u32(s.hist, HI_BINS).fill(0);
  const masks = o.models.map((m) => (m.kind === "dense" ? 0 : a.alloc(o.maxChunk)));
  const acc = a.alloc(24 * k); // float64 { before, after, infKept } per model
  // Random masks drawn for the L1 sums are kept, as bits, for the output pass: chunk c at c * chunkBits.
  const randomIds = o.models.flatMap((m, i) => (m.kind === "random" ? [i] : []));
  const chunkBits = Math.ceil(o.maxChunk / 128) * 16;
  const keptChunks =
    o.rescale && randomIds.length > 0
      ? Math.min(Math.ceil(n / o.maxChunk), Math.floor(MASK_CACHE_BYTES / (chunkBits * randomIds.length)))
      : 0;
  const maskCache = o.models.map((m) => (m.kind === "random" && keptChunks > 0 ? a.alloc(keptChunks * chunkBits) : 0));
  const keptAt = (i: number, chunk: StreamChunk): number => {
    if (maskCache[i] === 0 || chunk.start % o.maxChunk !== 0) return -1;
    const c = chunk.start / o.maxChunk;
    return c < keptChunks ? maskCache[i]! + c * chunkBits : -1;
  };
  a.f64(acc, 3 * k).fill(0);
  const scales = o.models.map(() => 1);

  const resetTies = () => {
    for (const s of sels) if (s !== null) s.tieLeft = s.take;
  };
  /** Model i's keep-mask for the chunk (pointer), drawn or selected. */
  let emitting = false;
  const maskOf = (i: number, chunk: StreamChunk, len: number): number => {
    const m = o.models[i]!;
    const p = masks[i]!;
    if (m.kind === "random") {
      const kept = keptAt(i, chunk);
      if (kept >= 0 && emitting) a.k.unpack_bits(kept, p, len);
      else {
        drawMask(a, m.key, m.p, chunk.start, len, p);
        if (kept >= 0) a.k.pack_bits(p, kept, len);
      }
    } else if (m.kind === "magnitude") {
      const s = sels[i]!;
      const r = chunk.bf16;
      s.tieLeft =
        r !== undefined
          ? a.k.delta_topk_mask_bf16(r.models[i]!.byteOffset, r.base.byteOffset, len, s.key, s.tieLeft, p)
          : a.k.delta_topk_mask(chunk.models[i]!.byteOffset, chunk.base!.byteOffset, len, s.key, s.tieLeft, p);
    }
    return p;
  };
  /** L1 sums of every sparsified model under its mask for this chunk (masks already filled), three at a time. */
  const addSums = (ids: readonly number[], chunk: StreamChunk, len: number): void => {
    const tmp = a.scratch;
    for (let g = 0; g < ids.length; g += 3) {
      // A group of fewer than three repeats its first model in the spare slots (their sums are discarded).
      const group = [0, 1, 2].map((j) => ids[g + j] ?? ids[g]!);
      const real = Math.min(3, ids.length - g);
      const f = a.f64(tmp, 9);
      const all = a.f64(acc, 3 * k);
      group.forEach((id, j) => {
        f.set(all.subarray(3 * id, 3 * id + 3), 3 * j);
      });
      const r = chunk.bf16;
      const x = group.map((id) => (r !== undefined ? r.models[id]! : chunk.models[id]!).byteOffset);
      const m = group.map((id) => masks[id]!);
      if (r !== undefined) a.k.l1_sums3_bf16(x[0]!, m[0]!, x[1]!, m[1]!, x[2]!, m[2]!, r.base.byteOffset, len, tmp);
      else a.k.l1_sums3(x[0]!, m[0]!, x[1]!, m[1]!, x[2]!, m[2]!, chunk.base!.byteOffset, len, tmp);
      const f2 = a.f64(tmp, 9);
      const all2 = a.f64(acc, 3 * k);
      for (let j = 0; j < real; j++) all2.set(f2.subarray(3 * j, 3 * j + 3), 3 * group[j]!);
    }
  };

  return {
    passes,
    // Three models with consensus: every kernel used has a bf16 variant (raw chunks, no decoding).
    rawBf16: o.consensus && k === 3,
    observe(pass: number, chunk: StreamChunk): void {
      const r = chunk.bf16;
      const b = chunk.base!.byteOffset;
      const len = chunk.base!.length;
      if (pass === 0 || pass === 1) {
        for (let i = 0; i < k; i++) {
          const s = sels[i];
          if (s === null || s === undefined) continue;
          if (r !== undefined) {
            const x = r.models[i]!.byteOffset;
            if (pass === 0) a.k.delta_hist_hi_bf16(x, r.base.byteOffset, len, s.hist);
            else a.k.delta_hist_lo_bf16(x, r.base.byteOffset, len, s.bin, s.lo);
          } else if (pass === 0) a.k.delta_hist_hi(chunk.models[i]!.byteOffset, b, len, s.hist);
          else a.k.delta_hist_lo(chunk.models[i]!.byteOffset, b, len, s.bin, s.lo);
        }
      }
      const sumPass = anyMagnitude ? 2 : 0;
      if (pass === sumPass && o.rescale) {
        const ids: number[] = [];
        for (let i = 0; i < k; i++) {
          if (o.models[i]!.kind === "dense") continue;
          maskOf(i, chunk, len);
          ids.push(i);
        }
        addSums(ids, chunk, len);
      }
    },
    endPass(pass: number): void {
      for (const s of sels) {
        if (s === null) continue;
        if (pass === 0) {
          const pos = n - s.take; // ascending position of the threshold
          const hist = a.u32(s.hist, HI_BINS);
          let below = 0;
          let bin = 0;
          for (; bin < HI_BINS; bin++) {
            const c = hist[bin]!;
            if (below + c > pos) break;
            below += c;
          }
          s.bin = bin;
          s.below = below;
          a.u32(s.lo, LO_BINS).fill(0);
        } else if (pass === 1) {
          const pos = n - s.take;
          const lo = a.u32(s.lo, LO_BINS);
          let below = s.below;
          let l = 0;
          for (; l < LO_BINS; l++) {
            const c = lo[l]!;
            if (below + c > pos) break;
            below += c;
          }
          s.key = ((s.bin << 16) | l) >>> 0;
          s.take = s.take - (n - below - lo[l]!); // ties at the threshold kept, in index order
        }
      }
      resetTies();
      if (pass === passes - 1 && o.rescale) {
        const all = a.f64(acc, 3 * k);
        o.models.forEach((m, i) => {
          if (m.kind === "dense") return;
          const sums: L1Sums = { before: all[3 * i]!, after: all[3 * i + 1]!, infKept: all[3 * i + 2] === 1 };
          scales[i] = rescaleFromNorms(sums.before, l1After(sums));
        });
      }
    },
    emit(chunk: StreamChunk, out: Float32Array): void {
      emitting = true;
      const b = chunk.base!;
      const len = b.length;
      const ptrs = o.models.map((m, i) => (m.kind === "dense" ? 0 : maskOf(i, chunk, len)));
      const table = a.scratch;
      const u = a.u32(table, 4 * k);
      const f = a.f32(table, 4 * k);
      const r = chunk.bf16;
      for (let i = 0; i < k; i++) {
        u[4 * i] = (r !== undefined ? r.models[i]! : chunk.models[i]!).byteOffset;
        u[4 * i + 1] = ptrs[i]!;
        f[4 * i + 2] = scales[i]!;
        f[4 * i + 3] = o.w[i]!;
      }
      if (o.consensus) {
        if (r !== undefined)
          a.k.ta_consensus3_bf16(r.base.byteOffset, table, +o.normalize, o.lambda, out.byteOffset, len);
        else if (k === 3) a.k.ta_consensus3(b.byteOffset, table, +o.normalize, o.lambda, out.byteOffset, len);
        else a.k.ta_consensus(b.byteOffset, table, k, +o.normalize, o.lambda, out.byteOffset, len, table + 16 * k);
      } else {
        let divisor = 0;
        for (let i = 0; i < k; i++) divisor = Math.fround(divisor + o.w[i]!);
        if (Math.abs(divisor) < 1e-8) divisor = 1;
        if (k === 3) a.k.ta_sum3(b.byteOffset, table, +o.normalize, divisor, o.lambda, out.byteOffset, len);
        else a.k.ta_sum(b.byteOffset, table, k, +o.normalize, divisor, o.lambda, out.byteOffset, len);
      }
    },
  };
}

/** Bernoulli keep-mask of `len` draws from counter `start` of stream `key` (as bernoulliFill with a constant p). */
function drawMask(a: WasmArena, key: Key64, p: number, start: number, len: number, mask: number): void {
  const threshold = p >= 1 ? 4294967296 : p <= 0 ? 0 : Math.floor(p * 4294967296);
  if (threshold === 0 || threshold === 4294967296) {
    a.u8(mask, len).fill(threshold === 0 ? 0 : 1);
    return;
  }
  // Split where the counter's high word changes, as bernoulliFill does.
  let i = 0;
  while (i < len) {
    const c = start + i;
    const hi = Math.floor(c / 4294967296);
    const end = Math.min(len, (hi + 1) * 4294967296 - start);
    const k1 = (key.k1 + Math.imul(hi, 0x9e3779b9)) >>> 0;
    a.k.bernoulli(key.k0, k1, c >>> 0, threshold, mask + i, end - i);
    i = end;
  }
}
