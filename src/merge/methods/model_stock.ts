// Model Stock (Jang et al., 2024, arXiv:2403.19522); ref: mergekit/merge_methods/model_stock.py
//
// With base w0 and N >= 2 fine-tuned models w_i: cos = mean over pairs i < j of the cosine between the offsets
// (w_i - w0) and (w_j - w0) (norm product clamped to >= 1e-6, cosine clamped to [-1, 1]);
// t = N cos / (1 + (N - 1) cos); result = t * mean_i(w_i) + (1 - t) * w0. `filter_wise` computes one angle per
// row (slices along the last dim; a 1-D tensor is one row) instead of one for the whole tensor. Embeddings are
// cropped to their common block. Divergence: when 1 + (N - 1) cos = 0 (perfectly anti-correlated offsets)
// mergekit divides by zero; fusionkit rejects it.
//
// Large tensors with one angle stream: a pass adds up the offsets' Gram matrix (each entry in index order, as the
// whole-tensor merge adds it, so the same bits), then the output pass.

import { copyResult, defineMethod, mergeError } from "../define.js";
import { bool, resolveParams } from "../params.js";
import { rectifyCommon } from "../rectify.js";
import type { ParamSpec, StreamChunk, StreamInput, StreamingMerge } from "../types.js";

const PARAMETERS: ParamSpec[] = [
  { name: "filter_wise", type: "boolean", default: false, description: "one interpolation ratio per row" },
];

/** Elements per block of addGram / stockOut: their scratch (k float64 offsets, one float32 sum) stays in cache. */
const BLOCK = 4096;

/** Scratch for addGram and stockOut over k models. */
function scratchFor(k: number): { offs: Float64Array[]; sums: Float32Array } {
  return { offs: Array.from({ length: k }, () => new Float64Array(BLOCK)), sums: new Float32Array(BLOCK) };
}

/**
 * gram[i k + m] (m >= i) += the offsets' products over elements [from, to), each entry in index order. Block by
 * block: the offsets fround(w_i - w0) first, then one tight loop per entry with its sum in a local (a loop over
 * pairs per element ran ~20 ns an element).
 */
function addGram(
  w0: Float32Array,
  ws: readonly Float32Array[],
  from: number,
  to: number,
  gram: Float64Array,
  offs: readonly Float64Array[],
): void {
  const k = ws.length;
  for (let s = from; s < to; s += BLOCK) {
    const len = Math.min(BLOCK, to - s);
    for (let i = 0; i < k; i++) {
      const x = ws[i]!;
      const o = offs[i]!;
      for (let j = 0; j < len; j++) o[j] = Math.fround(x[s + j]! - w0[s + j]!);
    }
    for (let i = 0; i < k; i++) {
      const a = offs[i]!;
      for (let m = i; m < k; m++) {
        const b = offs[m]!;
        let sum = gram[i * k + m]!;
        for (let j = 0; j < len; j++) sum += a[j]! * b[j]!;
        gram[i * k + m] = sum;
      }
    }
  }
}

/** The interpolation ratio t from the offsets' Gram matrix (k >= 2 models). */
function stockRatio(gram: Float64Array, k: number, where: { method: string; tensor: string }): number {
  let cosSum = 0;
  for (let i = 0; i < k; i++) {
    for (let m = i + 1; m < k; m++) {
      const normProduct = Math.sqrt(gram[i * k + i]!) * Math.sqrt(gram[m * k + m]!);
      const cos = gram[i * k + m]! / Math.max(normProduct, 1e-6);
      cosSum += Math.min(1, Math.max(-1, cos));
    }
  }
  const cos = cosSum / ((k * (k - 1)) / 2);
  const denom = 1 + (k - 1) * cos;
  if (denom === 0) {
    throw mergeError(where, "the offsets from the base are perfectly anti-correlated (1 + (N-1) cos = 0)");
  }
  return (k * cos) / denom;
}

/** out[j] = t * mean_i(ws[i][j]) + (1 - t) * w0[j] for j in [from, to), the mean's float32 sum in model order. */
function stockOut(
  t: number,
  w0: Float32Array,
  ws: readonly Float32Array[],
  from: number,
  to: number,
  out: Float32Array,
  sums: Float32Array,
): void {
  const k = ws.length;
  for (let s = from; s < to; s += BLOCK) {
    const len = Math.min(BLOCK, to - s);
    sums.fill(0, 0, len);
    for (let i = 0; i < k; i++) {
      const x = ws[i]!;
      for (let j = 0; j < len; j++) sums[j] = sums[j]! + x[s + j]!;
    }
    for (let j = 0; j < len; j++) out[s + j] = t * Math.fround(sums[j]! / k) + (1 - t) * w0[s + j]!;
  }
}

/** One angle for the whole tensor, in a statistic pass and an output pass; undefined for filter_wise or < 2 models. */
function streamModelStock(input: StreamInput): StreamingMerge | undefined {
  if (!streams(input)) return undefined;
  const k = input.models;
  const where = { method: "model_stock", tensor: input.tensorName };
  const gram = new Float64Array(k * k);
  const { offs, sums } = scratchFor(k);
  let t = 0;
  return {
    passes: 1,
    observe(_pass: number, chunk: StreamChunk): void {
      addGram(chunk.base!, chunk.models, 0, chunk.base!.length, gram, offs);
    },
    endPass(): void {
      t = stockRatio(gram, k, where);
    },
    emit(chunk: StreamChunk, out: Float32Array): void {
      stockOut(t, chunk.base!, chunk.models, 0, chunk.base!.length, out, sums);
    },
  };
}

function streams(input: StreamInput): boolean {
  if (input.models < 2 || !input.hasBase) return false;
  const where = { method: "model_stock", tensor: input.tensorName };
  return !bool(resolveParams(PARAMETERS, input.params, where), "filter_wise") || input.shape.length < 2;
}

export const modelStock = defineMethod({
  name: "model_stock",
  title: "Model Stock",
  reference: "Jang et al., Model Stock: All we need is just a few fine-tuned models, 2024, arXiv:2403.19522",
  mergekitRef: "mergekit/merge_methods/model_stock.py",
  base: "required",
  models: { min: 0 },
  random: false,
  parameters: PARAMETERS,
  modelParameters: [],
  run(ctx) {
    if (ctx.models.length === 0) return copyResult(ctx.base!);
    if (ctx.models.length < 2) {
      throw mergeError(ctx, `needs a base plus at least two models, got ${ctx.models.length} besides the base`);
    }
    const ts = rectifyCommon(ctx, [ctx.base!, ...ctx.models]);
    const shape = [...ts[0]!.shape];
    const w0 = ts[0]!.data;
    const ws = ts.slice(1).map((t) => t.data);
    const k = ws.length;
    const n = w0.length;
    const rowLen = bool(ctx.params, "filter_wise") && shape.length >= 2 ? shape[shape.length - 1]! : n;
    const out = new Float32Array(n);
    const gram = new Float64Array(k * k);
    const { offs, sums } = scratchFor(k);
    for (let s = 0; s < n; s += rowLen) {
      gram.fill(0);
      addGram(w0, ws, s, s + rowLen, gram, offs);
      stockOut(stockRatio(gram, k, ctx), w0, ws, s, s + rowLen, out, sums);
    }
    return { data: out, shape };
  },
  streaming: streamModelStock,
  // a k x k Gram matrix: nothing beyond the engine's chunk buffers
  streamingBytes: (input) => (streams(input) ? 0 : undefined),
});
