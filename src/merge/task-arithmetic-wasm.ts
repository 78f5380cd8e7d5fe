// The streaming task-arithmetic merge (task-arithmetic-stream.ts) on WebAssembly SIMD kernels, for chunks that
// live in the wasm arena (the engine's buffers). Same statistics, same output bits as the whole-tensor merge.
// Passes, for magnitude (top-k) models, after a sample of the tensor (sampleSize elements) has been seen:
//
//   band:   the sample's keys of |delta| at quantiles around the threshold's bound a band that holds it with near
//           certainty; one pass counts the keys below the band and gathers those inside it, and the exact threshold
//           key (and how many ties to keep) is selected among the gathered keys
//   hi, lo: only when the band missed the threshold (or gathered too much): high-bits histograms, then low-bits
//           histograms inside the threshold bin, as a radix select over the whole tensor
//   sums:   L1 sums under the keep-masks (rescale: random masks drawn, or top-k masks)
//   emit:   keep-masks (top-k, or Bernoulli draws), then the sign-consensus or plain combine, into float32 or,
//           for raw bf16 chunks (emitBf16), straight into bf16 bits
//
// Without a sample the passes are hi, lo, sums. Deltas are never stored: every kernel recomputes x - b from the
// chunk (one float32 subtraction per element). Arena memory is allocated when the stream is created, and the
// gathered-key buffers when the sample arrives; views are taken per call (see arena.ts).

import type { Key64 } from "../tensor/kernels.js";
import type { WasmArena } from "../wasm/arena.js";
import { type L1Sums, l1After, l1Before, rescaleFromNorms } from "./sparsify.js";
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
/** Elements of the sample the band is taken from (sample quantiles of |delta|; see bandOf). */
const SAMPLE_SIZE = 1 << 16;
/** Bytes of bit-packed Bernoulli masks kept from the statistics pass for the output pass (drawing costs more). */
const MASK_CACHE_BYTES = 16 << 20;
const LO_BINS = 1 << 16;
/** The largest share of a tensor's keys a band pass gathers (4 bytes a key, per sparsified model). */
const MAX_BAND_SHARE = 1 / 8;
/** float64s per model of the L1 accumulators: before[4], after[4], infKept. */
const REC = 9;

interface Sel {
  hist: number;
  lo: number;
  bin: number;
  below: number;
  key: number;
  take: number;
  tieLeft: number;
  /** Band search: keys [bandLo, bandHi], gathered at `keys` (up to `cap`), { below, gathered } u32 at `counts`. */
  bandLo: number;
  bandHi: number;
  keys: number;
  cap: number;
  counts: number;
  bandBelow: number;
  /** Threshold known (key and take final). */
  settled: boolean;
}

type Phase = "band" | "hi" | "lo" | "sums";

export function wasmTaskArithmeticStream(a: WasmArena, o: WasmStreamOptions): StreamingMerge {
  const k = o.models.length;
  const n = o.n;
  const anyMagnitude = o.models.some((m) => m.kind === "magnitude");
  const anyRandom = o.models.some((m) => m.kind === "random");
  /** TIES with three models: the emit pass selects the top-k entries inside the combine kernel (no mask pass). */
  const fusedTopK = o.consensus && k === 3 && anyMagnitude && !anyRandom;
  const sums: Phase[] = o.rescale && (anyMagnitude || anyRandom) ? ["sums"] : [];
  let phases: Phase[] = anyMagnitude ? ["hi", "lo", ...sums] : sums;
  const sels: (Sel | null)[] = o.models.map((m) =>
    m.kind === "magnitude"
      ? {
          hist: a.alloc(HI_BINS * 4),
          lo: a.alloc(LO_BINS * 4),
          bin: 0,
          below: 0,
          key: 0,
          take: m.take,
          tieLeft: 0,
          bandLo: 0,
          bandHi: 0,
          keys: 0,
          cap: 0,
          counts: a.alloc(8),
          bandBelow: 0,
          settled: false,
        }
      : null,
  );
  for (const s of sels) if (s !== null) a.u32(s.hist, HI_BINS).fill(0);
  const masks = o.models.map((m) => (m.kind === "dense" ? 0 : a.alloc(o.maxChunk)));
  const acc = a.alloc(8 * REC * k); // float64 { before[4], after[4], infKept } per model (sparsify.ts's lanes)
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
  a.f64(acc, REC * k).fill(0);
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
    // The kernel's lane j takes local index j mod 4; globally that is lane (start + j) mod 4.
    const rot = chunk.start & 3;
    for (let g = 0; g < ids.length; g += 3) {
      // A group of fewer than three repeats its first model in the spare slots (their sums are discarded).
      const group = [0, 1, 2].map((j) => ids[g + j] ?? ids[g]!);
      const real = Math.min(3, ids.length - g);
      const f = a.f64(tmp, 3 * REC);
      const all = a.f64(acc, REC * k);
      group.forEach((id, j) => {
        for (let lane = 0; lane < 4; lane++) {
          f[REC * j + lane] = all[REC * id + ((rot + lane) & 3)]!;
          f[REC * j + 4 + lane] = all[REC * id + 4 + ((rot + lane) & 3)]!;
        }
        f[REC * j + 8] = all[REC * id + 8]!;
      });
      const r = chunk.bf16;
      const x = group.map((id) => (r !== undefined ? r.models[id]! : chunk.models[id]!).byteOffset);
      const m = group.map((id) => masks[id]!);
      if (r !== undefined) a.k.l1_sums3_bf16(x[0]!, m[0]!, x[1]!, m[1]!, x[2]!, m[2]!, r.base.byteOffset, len, tmp);
      else a.k.l1_sums3(x[0]!, m[0]!, x[1]!, m[1]!, x[2]!, m[2]!, chunk.base!.byteOffset, len, tmp);
      const f2 = a.f64(tmp, 3 * REC);
      const all2 = a.f64(acc, REC * k);
      for (let j = 0; j < real; j++) {
        const id = group[j]!;
        for (let lane = 0; lane < 4; lane++) {
          all2[REC * id + ((rot + lane) & 3)] = f2[REC * j + lane]!;
          all2[REC * id + 4 + ((rot + lane) & 3)] = f2[REC * j + 4 + lane]!;
        }
        all2[REC * id + 8] = f2[REC * j + 8]!;
      }
    }
  };

  /** The output pass for one chunk into float32 at `outP`, or (raw bf16 chunks only) bf16 bits. */
  function emitInto(chunk: StreamChunk, outP: number, bf16Out: boolean): void {
    emitting = true;
    const b = chunk.base!;
    const len = b.length;
    const r = chunk.bf16;
    if (fusedTopK) {
      // Top-k masks computed inside the combine (thresholds and ties left per model; -1 keeps everything).
      const table = a.scratch;
      const u = a.u32(table, 12);
      const f = a.f32(table, 12);
      const sel = a.i32(table + 64, 6);
      for (let i = 0; i < 3; i++) {
        const s = sels[i];
        u[4 * i] = (r !== undefined ? r.models[i]! : chunk.models[i]!).byteOffset;
        u[4 * i + 1] = 0;
        f[4 * i + 2] = scales[i]!;
        f[4 * i + 3] = o.w[i]!;
        sel[i] = s === null || s === undefined ? -1 : s.key;
        sel[3 + i] = s === null || s === undefined ? 0 : s.tieLeft;
      }
      if (r !== undefined)
        (bf16Out ? a.k.ta_consensus3_topk_bf16_out : a.k.ta_consensus3_topk_bf16)(
          r.base.byteOffset,
          table,
          table + 64,
          +o.normalize,
          o.lambda,
          outP,
          len,
        );
      else a.k.ta_consensus3_topk(b.byteOffset, table, table + 64, +o.normalize, o.lambda, outP, len);
      const left = a.i32(table + 64, 6);
      sels.forEach((s, i) => {
        if (s !== null) s.tieLeft = left[3 + i]!;
      });
      return;
    }
    const ptrs = o.models.map((m, i) => (m.kind === "dense" ? 0 : maskOf(i, chunk, len)));
    const table = a.scratch;
    const u = a.u32(table, 4 * k);
    const f = a.f32(table, 4 * k);
    for (let i = 0; i < k; i++) {
      u[4 * i] = (r !== undefined ? r.models[i]! : chunk.models[i]!).byteOffset;
      u[4 * i + 1] = ptrs[i]!;
      f[4 * i + 2] = scales[i]!;
      f[4 * i + 3] = o.w[i]!;
    }
    if (o.consensus) {
      if (r !== undefined)
        (bf16Out ? a.k.ta_consensus3_bf16_out : a.k.ta_consensus3_bf16)(
          r.base.byteOffset,
          table,
          +o.normalize,
          o.lambda,
          outP,
          len,
        );
      else if (k === 3) a.k.ta_consensus3(b.byteOffset, table, +o.normalize, o.lambda, outP, len);
      else a.k.ta_consensus(b.byteOffset, table, k, +o.normalize, o.lambda, outP, len, table + 16 * k);
    } else {
      let divisor = 0;
      for (let i = 0; i < k; i++) divisor = Math.fround(divisor + o.w[i]!);
      if (Math.abs(divisor) < 1e-8) divisor = 1;
      if (r !== undefined)
        (bf16Out ? a.k.ta_sum3_bf16_out : a.k.ta_sum3_bf16)(
          r.base.byteOffset,
          table,
          +o.normalize,
          divisor,
          o.lambda,
          outP,
          len,
        );
      else if (k === 3) a.k.ta_sum3(b.byteOffset, table, +o.normalize, divisor, o.lambda, outP, len);
      else a.k.ta_sum(b.byteOffset, table, k, +o.normalize, divisor, o.lambda, outP, len);
    }
  }

  return {
    // Three models: every kernel used has a bf16 variant (raw chunks, no decoding).
    rawBf16: k === 3,
    get passes(): number {
      return phases.length;
    },
    sampleSize: anyMagnitude ? SAMPLE_SIZE : 0,
    sample(chunk: StreamChunk): void {
      const m = chunk.base!.length;
      if (m === 0) return;
      const r = chunk.bf16;
      const bands: Band[] = [];
      for (let i = 0; i < k; i++) {
        const s = sels[i];
        if (s === null || s === undefined) continue;
        const x = r !== undefined ? r.models[i]!.byteOffset : chunk.models[i]!.byteOffset;
        const xb = r !== undefined ? r.base.byteOffset : chunk.base!.byteOffset;
        bands[i] = bandOf(a, s, r !== undefined, x, xb, m, (n - s.take) / n);
      }
      // Views of the sample are dead from here: the gathered-key buffers grow the arena.
      sels.forEach((s, i) => {
        if (s === null) return;
        const band = bands[i]!;
        s.bandLo = band.lo;
        s.bandHi = band.hi;
        // A band of one key gathers nothing: its count settles the threshold (the common case of a model equal to
        // the base, or of mostly unchanged entries: every key 0). Any other band gathers at most MAX_BAND_SHARE of
        // the tensor; a band that holds more costs the two radix passes instead of memory.
        s.cap = band.lo === band.hi ? 0 : Math.min(n, Math.ceil(n * Math.min(band.share, MAX_BAND_SHARE)) + 4096);
        s.keys = a.alloc((s.cap + 4) * 4);
        s.bandBelow = 0;
      });
      for (const s of sels) if (s !== null) a.u32(s.counts, 2).fill(0);
      phases = ["band", ...sums];
    },
    observe(pass: number, chunk: StreamChunk): void {
      const phase = phases[pass];
      const r = chunk.bf16;
      const b = chunk.base!.byteOffset;
      const len = chunk.base!.length;
      if (phase === "band" && k === 3 && sels.every((s) => s !== null && s !== undefined && !s.settled)) {
        // All three models in one pass over the chunk (the base loaded once).
        const recs = a.scratch;
        const u = a.u32(recs, 24);
        sels.forEach((s, i) => {
          u.set([s!.bandLo, s!.bandHi, s!.keys, s!.cap, s!.counts], 8 * i);
        });
        const xs = (r !== undefined ? r.models : chunk.models).map((x) => x!.byteOffset);
        if (r !== undefined) a.k.delta_band3_bf16(xs[0]!, xs[1]!, xs[2]!, r.base.byteOffset, len, recs, a.packTable);
        else a.k.delta_band3(xs[0]!, xs[1]!, xs[2]!, b, len, recs, a.packTable);
        for (const s of sels) s!.bandBelow += a.u32(s!.counts, 1)[0]!;
      } else if (phase === "band" || phase === "hi" || phase === "lo") {
        for (let i = 0; i < k; i++) {
          const s = sels[i];
          if (s === null || s === undefined || s.settled) continue;
          const x = r !== undefined ? r.models[i]!.byteOffset : chunk.models[i]!.byteOffset;
          const xb = r !== undefined ? r.base.byteOffset : b;
          if (phase === "band") {
            if (r !== undefined)
              a.k.delta_band_bf16(x, xb, len, s.bandLo, s.bandHi, s.keys, s.cap, s.counts, a.packTable);
            else a.k.delta_band(x, xb, len, s.bandLo, s.bandHi, s.keys, s.cap, s.counts, a.packTable);
            s.bandBelow += a.u32(s.counts, 1)[0]!;
          } else if (phase === "hi") {
            if (r !== undefined) a.k.delta_hist_hi_bf16(x, xb, len, s.hist);
            else a.k.delta_hist_hi(x, xb, len, s.hist);
          } else if (r !== undefined) a.k.delta_hist_lo_bf16(x, xb, len, s.bin, s.lo);
          else a.k.delta_hist_lo(x, xb, len, s.bin, s.lo);
        }
      }
      if (phase === "sums") {
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
      const phase = phases[pass];
      for (const s of sels) {
        if (s === null || s.settled) continue;
        const pos = n - s.take; // ascending position of the threshold
        if (phase === "band") {
          const gathered = a.u32(s.counts, 2)[1]!;
          const single = s.bandLo === s.bandHi;
          if ((single || gathered <= s.cap) && s.bandBelow <= pos && pos < s.bandBelow + gathered) {
            const t = single
              ? { key: s.bandLo, below: 0, equal: gathered }
              : selectKey(a, s, gathered, pos - s.bandBelow);
            s.key = t.key;
            s.take = s.take - (n - s.bandBelow - t.below - t.equal);
            s.settled = true;
          } else {
            // The band missed: radix-select over the whole tensor in two more passes.
            a.u32(s.hist, HI_BINS).fill(0);
            if (phases[pass + 1] !== "hi") phases = ["band", "hi", "lo", ...sums];
          }
        } else if (phase === "hi") {
          const at = rankBin(a.u32(s.hist, HI_BINS), pos, 0);
          s.bin = at.bin;
          s.below = at.below;
          a.u32(s.lo, LO_BINS).fill(0);
        } else if (phase === "lo") {
          const lo = a.u32(s.lo, LO_BINS);
          const at = rankBin(lo, pos, s.below);
          s.key = ((s.bin << 16) | at.bin) >>> 0;
          s.take = s.take - (n - at.below - lo[at.bin]!); // ties at the threshold kept, in index order
          s.settled = true;
        }
      }
      resetTies();
      if (pass === phases.length - 1 && o.rescale) {
        const all = a.f64(acc, REC * k);
        o.models.forEach((m, i) => {
          if (m.kind === "dense") return;
          const sums: L1Sums = {
            before: all.slice(REC * i, REC * i + 4),
            after: all.slice(REC * i + 4, REC * i + 8),
            infKept: all[REC * i + 8] === 1,
          };
          scales[i] = rescaleFromNorms(l1Before(sums), l1After(sums));
        });
      }
    },
    emit(chunk: StreamChunk, out: Float32Array): void {
      emitInto(chunk, out.byteOffset, false);
    },
    emitBf16(chunk: StreamChunk, out: number): boolean {
      if (chunk.bf16 === undefined) return false;
      emitInto(chunk, out, true);
      return true;
    },
  };
}

/**
 * An upper bound of the arena bytes a stream over an n-element tensor takes (what wasmTaskArithmeticStream and the
 * engine's sample buffers allocate): per model a chunk's keep-mask, per magnitude model its histograms and at most
 * MAX_BAND_SHARE of the tensor in gathered keys, the random models' mask cache, the sample of every input (raw bf16
 * or float32 plus float32 values). For `fusionkit merge --dry-run`'s estimate.
 */
export function wasmStreamBytes(
  kinds: readonly WasmModel["kind"][],
  n: number,
  maxChunk: number,
  rescale: boolean,
): number {
  const magnitude = kinds.filter((kind) => kind === "magnitude").length;
  const random = kinds.filter((kind) => kind === "random").length;
  const perMagnitude = (HI_BINS + LO_BINS) * 4 + 4 * (Math.min(n, Math.ceil(n * MAX_BAND_SHARE) + 4096) + 4) + 8;
  // as the stream sizes its mask cache: whole chunks' bits, at most MASK_CACHE_BYTES
  const chunkBits = Math.ceil(maxChunk / 128) * 16;
  const keptChunks =
    rescale && random > 0 ? Math.min(Math.ceil(n / maxChunk), Math.floor(MASK_CACHE_BYTES / (chunkBits * random))) : 0;
  const maskCache = keptChunks * chunkBits * random;
  const sample = magnitude > 0 ? Math.min(n, SAMPLE_SIZE) * 8 * (kinds.length + 1) : 0;
  // + each allocation's rounding up to the arena's alignment (64 bytes at most; a handful per model)
  return kinds.length * (maxChunk + 8 * REC + 8 * 64) + magnitude * perMagnitude + maskCache + sample + 8 * 64;
}

/** Bernoulli keep-mask of `len` draws from counter `start` of stream `key` (as bernoulliFill with a constant p). */
function drawMask(a: WasmArena, key: Key64, p: number, start: number, len: number, mask: number): void {
  const threshold = p >= 1 ? 4294967296 : p <= 0 ? 0 : Math.ceil(p * 4294967296);
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

interface Band {
  lo: number;
  hi: number;
  /** Share of the tensor the gather buffer should hold. */
  share: number;
}

/**
 * The band of keys to gather for a threshold at quantile q, from an m-element sample (x, b pointers; raw bf16 or
 * float32): the sample's keys at quantiles q -+ (4 standard errors + 2 / m), by radixSelect over the sample. The buffer is sized for the sample's share of the band plus 4 standard errors
 * of it (keys can be heavy: bf16 deltas take few values).
 */
function bandOf(a: WasmArena, s: Sel, bf16: boolean, x: number, b: number, m: number, q: number): Band {
  const keyAt = (rank: number) =>
    radixSelect(
      a,
      s,
      rank,
      () => (bf16 ? a.k.delta_hist_hi_bf16(x, b, m, s.hist) : a.k.delta_hist_hi(x, b, m, s.hist)),
      (bin) => (bf16 ? a.k.delta_hist_lo_bf16(x, b, m, bin, s.lo) : a.k.delta_hist_lo(x, b, m, bin, s.lo)),
    );
  const spread = 4 * Math.sqrt((q * (1 - q)) / m) + 2 / m;
  const rLo = Math.floor((q - spread) * m);
  const rHi = Math.ceil((q + spread) * m);
  const lo = rLo < 0 ? { key: 0, below: 0, equal: 0 } : keyAt(rLo);
  const hi = rHi >= m ? { key: 0x7fffffff, below: m, equal: 0 } : keyAt(rHi);
  const f = (hi.below + hi.equal - lo.below) / m;
  return { lo: lo.key, hi: hi.key, share: Math.min(1, f + 4 * Math.sqrt((f * (1 - f)) / m) + 2 / m) };
}

/** The key of ascending rank r among the g gathered keys at s.keys (see radixSelect). */
function selectKey(a: WasmArena, s: Sel, g: number, r: number): { key: number; below: number; equal: number } {
  return radixSelect(
    a,
    s,
    r,
    () => a.k.keys_hist_hi(s.keys, g, s.hist),
    (bin) => a.k.keys_hist_lo(s.keys, g, bin, s.lo),
  );
}

/**
 * The key of ascending rank r among a set of keys, and how many keys are below it and equal to it, in two radix
 * levels: `countHigh` fills s.hist with the 16 high bits of every key, `countLow(bin)` fills s.lo with the low bits
 * of the keys in that bin (both histograms are zeroed here first).
 */
function radixSelect(
  a: WasmArena,
  s: Sel,
  r: number,
  countHigh: () => void,
  countLow: (bin: number) => void,
): { key: number; below: number; equal: number } {
  a.u32(s.hist, HI_BINS).fill(0);
  countHigh();
  const high = rankBin(a.u32(s.hist, HI_BINS), r, 0);
  a.u32(s.lo, LO_BINS).fill(0);
  countLow(high.bin);
  const lo = a.u32(s.lo, LO_BINS);
  const low = rankBin(lo, r, high.below);
  return { key: ((high.bin << 16) | low.bin) >>> 0, below: low.below, equal: lo[low.bin]! };
}

/**
 * The bin of a histogram that holds ascending rank r, when `below` keys come before its first bin, and how many keys
 * come before that bin (the last bin if r lies beyond them all).
 */
function rankBin(counts: Uint32Array, r: number, below: number): { bin: number; below: number } {
  let bin = 0;
  for (; bin < counts.length - 1; bin++) {
    const c = counts[bin]!;
    if (below + c > r) break;
    below += c;
  }
  return { bin, below };
}
