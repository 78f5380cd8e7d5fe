// Multi-SLERP: barycentric interpolation on the hypersphere (Goddard, 2025, goddard.blog "multislerp-wow-what-a-cool-idea"); ref: mergekit/merge_methods/multislerp.py
//
// Each (task) vector x_i (model - base when a base is given) is projected to the unit sphere, u_i = x_i /
// (|x_i| + eps); their weighted mean M = sum w_i u_i is normalised to m; mergekit then maps the weighted mean of
// the tangent vectors u_i - (u_i . m) m back with the exponential map. That tangent mean is identically zero
// (sum w_i u_i - (M . m) m = M - |M| m = 0), so the result is exactly m * avg_norm with avg_norm = sum w_i |x_i|
// (mergekit's float32 evaluation differs from this only by rounding noise). Weights are normalised to sum 1 by
// default. If |M| < eps: two models fall back to w0 x0 + w1 x1; more models are rejected (antipodal inputs).
// Divergences: normalize_weights with weights summing to 0 is rejected (mergekit divides by zero); embeddings of
// different sizes are cropped to their common block (mergekit does not rectify here). The arithmetic is a stream
// (two statistic passes, then the output pass): large tensors go through it chunk by chunk, `run` in one chunk.

import { copyResult, defineMethod, mergeError, runStreamWhole } from "../define.js";
import { bool, num, resolveParams } from "../params.js";
import { rectifyCommon } from "../rectify.js";
import type { ParamSpec, ResolvedParams, StreamChunk, StreamInput, StreamingMerge } from "../types.js";

const PARAMETERS: ParamSpec[] = [
  { name: "normalize_weights", type: "boolean", default: true, description: "scale the weights to sum to 1" },
  { name: "eps", type: "number", default: 1e-8, min: 0, description: "numerical floor for norms" },
];
const MODEL_PARAMETERS: ParamSpec[] = [
  { name: "weight", type: "number", description: "barycentric weight of this model" },
];

/** The weights as float32, scaled to sum to 1 (float32 sum, in order) when normalize_weights is set. */
function weightsOf(
  params: ResolvedParams,
  modelParams: readonly ResolvedParams[],
  where: { method: string; tensor: string },
): number[] {
  const w = modelParams.map((p) => Math.fround(num(p, "weight")));
  if (!bool(params, "normalize_weights")) return w;
  let sum = 0;
  for (const x of w) sum = Math.fround(sum + x);
  if (sum === 0) throw mergeError(where, `weights [${w.join(", ")}] sum to 0 with normalize_weights: true`, "weight");
  return w.map((x) => Math.fround(x / sum));
}

/** acc[j] += c * x[j] over a chunk, x the model or its task vector fround(model - base). */
function addScaled(acc: Float64Array, c: number, x: Float32Array, b: Float32Array | undefined): void {
  const n = x.length;
  if (b === undefined) for (let j = 0; j < n; j++) acc[j] += c * x[j]!;
  else for (let j = 0; j < n; j++) acc[j] += c * Math.fround(x[j]! - b[j]!);
}

/** Sum of squares of a model or of its task vector, in index order, continued from `s`. */
function addSquares(s: number, x: Float32Array, b: Float32Array | undefined): number {
  const n = x.length;
  if (b === undefined) {
    for (let j = 0; j < n; j++) s += x[j]! * x[j]!;
  } else {
    for (let j = 0; j < n; j++) {
      const v = Math.fround(x[j]! - b[j]!);
      s += v * v;
    }
  }
  return s;
}

/**
 * Two statistic passes (each (task) vector's squared norm; then the weighted mean's, the mean recomputed chunk by
 * chunk in the whole merge's order) and the output pass, so large tensors are never held whole. Each sum runs in
 * index order as in `run`: the same bits.
 */
function multislerpStream(
  w: readonly number[],
  eps: number,
  where: { method: string; tensor: string },
): StreamingMerge {
  const k = w.length;
  const ss = new Float64Array(k);
  const c = new Float64Array(k);
  let mean = new Float64Array(0);
  let mm = 0;
  let scale = 0;
  let lerp = false;
  /** The chunk's weighted mean of the unit (task) vectors, in `mean`. */
  const meanOf = (chunk: StreamChunk): Float64Array => {
    const n = chunk.models[0]!.length;
    if (mean.length < n) mean = new Float64Array(n);
    const m = mean.subarray(0, n);
    m.fill(0);
    for (let i = 0; i < k; i++) addScaled(m, c[i]!, chunk.models[i]!, chunk.base);
    return m;
  };
  return {
    passes: 2,
    observe(pass: number, chunk: StreamChunk): void {
      if (pass === 0) {
        for (let i = 0; i < k; i++) ss[i] = addSquares(ss[i]!, chunk.models[i]!, chunk.base);
        return;
      }
      const m = meanOf(chunk);
      let s = mm;
      for (let j = 0; j < m.length; j++) s += m[j]! * m[j]!;
      mm = s;
    },
    endPass(pass: number): void {
      if (pass === 0) {
        for (let i = 0; i < k; i++) c[i] = w[i]! / (Math.sqrt(ss[i]!) + eps);
        return;
      }
      const meanNorm = Math.sqrt(mm);
      if (meanNorm < eps) {
        if (k !== 2) throw mergeError(where, ANTIPODAL);
        lerp = true;
        return;
      }
      let avgNorm = 0;
      for (let i = 0; i < k; i++) avgNorm += Math.sqrt(ss[i]!) * w[i]!;
      scale = avgNorm / meanNorm;
    },
    emit(chunk: StreamChunk, out: Float32Array): void {
      const b = chunk.base;
      const n = out.length;
      if (lerp) {
        const [m0, m1] = chunk.models as [Float32Array, Float32Array];
        const [w0, w1] = w as [number, number];
        if (b === undefined) for (let j = 0; j < n; j++) out[j] = m0[j]! * w0 + m1[j]! * w1;
        else {
          for (let j = 0; j < n; j++) {
            const r = Math.fround(Math.fround(m0[j]! - b[j]!) * w0 + Math.fround(m1[j]! - b[j]!) * w1);
            out[j] = r + b[j]!;
          }
        }
        return;
      }
      const m = meanOf(chunk);
      if (b === undefined) for (let j = 0; j < n; j++) out[j] = m[j]! * scale;
      else for (let j = 0; j < n; j++) out[j] = Math.fround(m[j]! * scale) + b[j]!;
    },
  };
}

/** The stream for a large tensor of two or more models (one model is a copy). */
function streamMultislerp(input: StreamInput): StreamingMerge | undefined {
  const k = input.models;
  if (k < 2) return undefined;
  const where = { method: "multislerp", tensor: input.tensorName };
  const params = resolveParams(PARAMETERS, input.params, where);
  const mps = Array.from({ length: k }, (_, i) =>
    resolveParams(MODEL_PARAMETERS, input.modelParams?.[i], { ...where, model: i }),
  );
  return multislerpStream(weightsOf(params, mps, where), num(params, "eps"), where);
}

const ANTIPODAL =
  "the weighted sum of the unit-normalised inputs is zero (antipodal vectors whose weights balance out); " +
  "use different weights";

export const multislerp = defineMethod({
  name: "multislerp",
  title: "Multi-SLERP",
  reference: "Goddard, Multi-SLERP, 2025, https://goddard.blog/posts/multislerp-wow-what-a-cool-idea",
  mergekitRef: "mergekit/merge_methods/multislerp.py",
  base: "optional",
  models: { min: 1 },
  random: false,
  parameters: PARAMETERS,
  modelParameters: MODEL_PARAMETERS,
  run(ctx) {
    if (ctx.models.length === 1) return copyResult(ctx.models[0]!);
    const ts = rectifyCommon(ctx, ctx.base === undefined ? ctx.models : [...ctx.models, ctx.base]);
    const models = ts.slice(0, ctx.models.length);
    const base = ctx.base === undefined ? undefined : ts[ts.length - 1]!;
    const stream = multislerpStream(weightsOf(ctx.params, ctx.modelParams, ctx), num(ctx.params, "eps"), ctx);
    const chunk = { start: 0, models: models.map((m) => m.data), base: base?.data };
    const out = runStreamWhole(stream, chunk, new Float32Array(models[0]!.data.length));
    return { data: out, shape: [...models[0]!.shape] };
  },
  streaming: streamMultislerp,
  // per model two float64s, and the chunk's weighted mean (8 bytes an element)
  streamingBytes: (input, chunk) => (input.models >= 2 ? 8 * chunk + 16 * input.models : undefined),
});
