// Embedding rectification (mergekit/merge_methods/rectify_embed.py): models with different vocabulary sizes
// disagree on the row count of their token embeddings / LM head. For tensors flagged `isEmbed` (all 2-D) every
// input, base included, is cropped to the largest common top-left block; any other mismatch is SHAPE_MISMATCH.
//
// fusionkit applies this one rule in every method, so a merge's output shape is predictable from its inputs.
// mergekit is less uniform: the task-arithmetic family crops each model to the base (the same result when the
// base is the smallest, the usual case; an error in mergekit otherwise) and silently drops a non-embedding
// model of another shape; multislerp, sce and nearswap do not rectify at all (torch fails); karcher's
// rectification is a no-op (it crops a temporary list).

import { type MergeContext, shapeError } from "./define.js";
import type { TensorData } from "./types.js";

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** The top-left [rows, cols] block of a 2-D tensor (a copy; the tensor itself when it already has that shape). */
export function crop2d(t: TensorData, rows: number, cols: number): TensorData {
  const [r, c] = t.shape as [number, number];
  if (r === rows && c === cols) return t;
  const out = new Float32Array(rows * cols);
  if (c === cols) out.set(t.data.subarray(0, rows * cols));
  else for (let i = 0; i < rows; i++) out.set(t.data.subarray(i * c, i * c + cols), i * cols);
  return { data: out, shape: [rows, cols] };
}

/**
 * mergekit's rectify_embed_sizes: when the tensor is an embedding and every input is 2-D, crop all of them to
 * their largest common top-left submatrix. Then every input must have one shape (else SHAPE_MISMATCH).
 */
export function rectifyCommon(ctx: MergeContext, tensors: readonly TensorData[]): TensorData[] {
  let out = [...tensors];
  if (ctx.isEmbed && out.length > 0 && out.every((t) => t.shape.length === 2)) {
    const rows = Math.min(...out.map((t) => t.shape[0]!));
    const cols = Math.min(...out.map((t) => t.shape[1]!));
    out = out.map((t) => crop2d(t, rows, cols));
  }
  requireSameShape(ctx, out);
  return out;
}

/** Throw SHAPE_MISMATCH unless every tensor has the first one's shape. */
export function requireSameShape(ctx: MergeContext, tensors: readonly TensorData[]): void {
  if (tensors.length === 0) return;
  const s0 = tensors[0]!.shape;
  if (tensors.every((t) => sameShape(t.shape, s0))) return;
  const shapes = [...new Set(tensors.map((t) => fmt(t.shape)))];
  const hint = ctx.isEmbed ? "" : " (only embedding tensors are cropped to a common size)";
  throw shapeError(ctx, `tensor size mismatch, sizes: ${shapes.join(", ")}${hint}`);
}
