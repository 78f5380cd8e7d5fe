// NuSLERP: weight-parameterised, optionally row-/column-wise SLERP (Goddard, mergekit, 2024; after Shoemake, 1985); ref: mergekit/merge_methods/nuslerp.py
//
// Two models with weights w0, w1 are interpolated with t = w1 / (w0 + w1) (t = 0.5 when |w0 + w1| < 1e-6).
// The vectors slerped are: the whole flattened tensor (`nuslerp_flatten`, the default); else slices along
// dim 0 (`nuslerp_row_wise`: for a matrix, each column); else slices along the last dim (each row). Each
// slice pair gets its own angle; nearly colinear pairs (|sin theta| < 1e-8) are lerped. With a base model
// the two task vectors (model - base) are slerped and the base added back. Norms accumulate in float64.
// The flattened form streams large tensors (one statistic pass, then the output pass).

import { addGram2, addGram2Delta } from "../../tensor/kernels.js";
import { copyResult, defineMethod, mergeError } from "../define.js";
import { bool, num, resolveParams } from "../params.js";
import { rectifyCommon } from "../rectify.js";
import type { ParamSpec, StreamChunk, StreamInput, StreamingMerge } from "../types.js";

const NORM_CLAMP = 1e-7;
const COLINEAR_EPS = 1e-8;

/** Interpolation coefficients (c0, c1) of one vector pair from its squared norms and dot product. */
function coefficients(t: number, nn0: number, nn1: number, d: number, out: Float64Array, k: number): void {
  const cos = d / (Math.max(Math.sqrt(nn0), NORM_CLAMP) * Math.max(Math.sqrt(nn1), NORM_CLAMP));
  const theta = Math.acos(Math.min(1, Math.max(-1, cos)));
  const sin = Math.sin(theta);
  if (Math.abs(sin) < COLINEAR_EPS) {
    out[2 * k] = 1 - t;
    out[2 * k + 1] = t;
  } else {
    out[2 * k] = Math.sin((1 - t) * theta) / sin;
    out[2 * k + 1] = Math.sin(t * theta) / sin;
  }
}

/**
 * nuslerp over a tensor of `shape`: `mode` "flatten" (one vector), "dim0" (vectors along dim 0) or "last"
 * (vectors along the last dim). Writes into `out`.
 */
export function nuslerpInto(
  t: number,
  v0: Float32Array,
  v1: Float32Array,
  shape: readonly number[],
  mode: "flatten" | "dim0" | "last",
  out: Float32Array,
): Float32Array {
  const n = v0.length;
  if (n === 0) return out;
  if (mode === "dim0" && shape.length >= 2) {
    // Vector c holds elements c, c + inner, c + 2 inner, ...: accumulate all of them row by row (cache friendly).
    const inner = n / shape[0]!;
    const acc = new Float64Array(3 * inner);
    for (let r = 0; r < n; r += inner) {
      for (let c = 0; c < inner; c++) {
        const a = v0[r + c]!;
        const b = v1[r + c]!;
        acc[3 * c] += a * a;
        acc[3 * c + 1] += b * b;
        acc[3 * c + 2] += a * b;
      }
    }
    const coef = new Float64Array(2 * inner);
    for (let c = 0; c < inner; c++) coefficients(t, acc[3 * c]!, acc[3 * c + 1]!, acc[3 * c + 2]!, coef, c);
    for (let r = 0; r < n; r += inner) {
      for (let c = 0; c < inner; c++) out[r + c] = coef[2 * c]! * v0[r + c]! + coef[2 * c + 1]! * v1[r + c]!;
    }
    return out;
  }
  const len = mode === "flatten" || shape.length === 0 ? n : shape[shape.length - 1]!;
  const coef = new Float64Array(2);
  const sums = new Float64Array(3);
  for (let s = 0; s < n; s += len) {
    sums.fill(0);
    addGram2(v0.subarray(s, s + len), v1.subarray(s, s + len), sums);
    coefficients(t, sums[0]!, sums[1]!, sums[2]!, coef, 0);
    const c0 = coef[0]!;
    const c1 = coef[1]!;
    for (let i = s; i < s + len; i++) out[i] = c0 * v0[i]! + c1 * v1[i]!;
  }
  return out;
}

const PARAMETERS: ParamSpec[] = [
  { name: "nuslerp_row_wise", type: "boolean", default: false, description: "slerp slices along dim 0 (columns)" },
  { name: "nuslerp_flatten", type: "boolean", default: true, description: "slerp the whole tensor as one vector" },
];
const MODEL_PARAMETERS: ParamSpec[] = [
  { name: "weight", type: "number", description: "relative weight; t = w1 / (w0 + w1)" },
];

/** t = w1 / (w0 + w1), 0.5 when the weights cancel. */
function ratio(w0: number, w1: number): number {
  const sum = w0 + w1;
  return Math.abs(sum) < 1e-6 ? 0.5 : w1 / sum;
}

/** Whether a stream takes this input: two models (plus a base, or none), one vector for the whole tensor. */
function streams(input: StreamInput): boolean {
  if (input.models !== 2) return false;
  const where = { method: "nuslerp", tensor: input.tensorName };
  return bool(resolveParams(PARAMETERS, input.params, where), "nuslerp_flatten");
}

/**
 * The flattened form as a statistic pass (the squared norms and the dot product of the two vectors, or of the two
 * task vectors fround(x - base), each in index order as nuslerpInto adds them) and an output pass.
 */
function streamNuslerp(input: StreamInput): StreamingMerge | undefined {
  if (!streams(input)) return undefined;
  const where = { method: "nuslerp", tensor: input.tensorName };
  const [w0, w1] = [0, 1].map((i) =>
    num(resolveParams(MODEL_PARAMETERS, input.modelParams?.[i], { ...where, model: i }), "weight"),
  ) as [number, number];
  const t = ratio(w0, w1);
  const coef = new Float64Array(2);
  const sums = new Float64Array(3);
  return {
    passes: 1,
    observe(_pass: number, chunk: StreamChunk): void {
      const b = chunk.base;
      if (b === undefined) addGram2(chunk.models[0]!, chunk.models[1]!, sums);
      else addGram2Delta(chunk.models[0]!, chunk.models[1]!, b, sums);
    },
    endPass(): void {
      coefficients(t, sums[0]!, sums[1]!, sums[2]!, coef, 0);
    },
    emit(chunk: StreamChunk, out: Float32Array): void {
      const [x0, x1] = chunk.models as [Float32Array, Float32Array];
      const b = chunk.base;
      const c0 = coef[0]!;
      const c1 = coef[1]!;
      const n = x0.length;
      if (b === undefined) {
        for (let i = 0; i < n; i++) out[i] = c0 * x0[i]! + c1 * x1[i]!;
        return;
      }
      for (let i = 0; i < n; i++) {
        const r = Math.fround(c0 * Math.fround(x0[i]! - b[i]!) + c1 * Math.fround(x1[i]! - b[i]!));
        out[i] = r + b[i]!;
      }
    },
  };
}

export const nuslerp = defineMethod({
  name: "nuslerp",
  title: "NuSLERP",
  reference: "mergekit NuSLERP (Goddard, 2024); SLERP after Shoemake, SIGGRAPH 1985",
  mergekitRef: "mergekit/merge_methods/nuslerp.py",
  base: "optional",
  models: { min: 1, max: 2 },
  random: false,
  parameters: PARAMETERS,
  modelParameters: MODEL_PARAMETERS,
  run(ctx) {
    const base = ctx.base;
    if (base !== undefined && ctx.models.length !== 2) {
      throw mergeError(ctx, `with a base model nuslerp needs exactly two other models, got ${ctx.models.length}`);
    }
    if (ctx.models.length === 1) return copyResult(ctx.models[0]!);
    const [w0, w1] = ctx.modelParams.map((p) => num(p, "weight")) as [number, number];
    const t = ratio(w0, w1);
    const ts = rectifyCommon(ctx, base === undefined ? ctx.models : [...ctx.models, base]);
    const shape = [...ts[0]!.shape];
    const mode = bool(ctx.params, "nuslerp_flatten")
      ? "flatten"
      : bool(ctx.params, "nuslerp_row_wise")
        ? "dim0"
        : "last";
    const n = ts[0]!.data.length;
    let a = ts[0]!.data;
    let b = ts[1]!.data;
    const bd = base === undefined ? undefined : ts[2]!.data;
    if (bd !== undefined) {
      const da = new Float32Array(n);
      const db = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        da[i] = a[i]! - bd[i]!;
        db[i] = b[i]! - bd[i]!;
      }
      a = da;
      b = db;
    }
    // With a base, `a` is our own scratch: write the result over it (same-index reads precede the write).
    const out = nuslerpInto(t, a, b, shape, mode, bd === undefined ? new Float32Array(n) : a);
    if (bd !== undefined) for (let i = 0; i < n; i++) out[i] = out[i]! + bd[i]!;
    return { data: out, shape };
  },
  streaming: streamNuslerp,
  // two float64 sums and a dot product: nothing beyond the engine's chunk buffers
  streamingBytes: (input) => (streams(input) ? 0 : undefined),
});
