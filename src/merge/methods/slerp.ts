// Spherical linear interpolation (Shoemake, 1985, "Animating rotation with quaternion curves"); ref: mergekit/merge_methods/slerp.py
//
// Interpolates base (t = 0) -> model (t = 1) along the great circle through the two flattened tensors, with
// the original magnitudes kept: s0 * v0 + s1 * v1 with s0 = sin((1-t) theta) / sin theta, s1 = sin(t theta) /
// sin theta, where cos theta is the cosine of the angle between them. When |cos theta| > 0.9995 (nearly
// (anti)parallel, including cos = -1) it falls back to plain lerp, like mergekit. A vector of norm <= 1e-8 is
// not normalised (mergekit's rule). Norms and dot products accumulate in float64.

import { addGram2 } from "../../tensor/kernels.js";
import { copyResult, defineMethod, runStreamWhole } from "../define.js";
import { num, resolveParams } from "../params.js";
import { rectifyCommon } from "../rectify.js";
import type { ParamSpec, StreamChunk, StreamInput, StreamingMerge, TensorData } from "../types.js";

const DOT_THRESHOLD = 0.9995;
const NORM_EPS = 1e-8;

/**
 * The weights of slerp(t, v0, v1) = s0 * v0 + s1 * v1, from float64 sums over the whole (flattened) tensors: v0 . v0,
 * v1 . v1 and v0 . v1, each accumulated in index order. mergekit semantics.
 */
function slerpWeights(t: number, ss0: number, ss1: number, d01: number): [number, number] {
  const n0 = Math.sqrt(ss0);
  const n1 = Math.sqrt(ss1);
  const cos = d01 / ((n0 > NORM_EPS ? n0 : 1) * (n1 > NORM_EPS ? n1 : 1));
  if (Math.abs(cos) > DOT_THRESHOLD) return [1 - t, t];
  const theta0 = Math.acos(cos);
  const sin0 = Math.sin(theta0);
  const thetaT = theta0 * t;
  return [Math.sin(theta0 - thetaT) / sin0, Math.sin(thetaT) / sin0];
}

/**
 * SLERP as one statistic pass (the three float64 sums, each in index order) and an output pass, out = s0 * v0 +
 * s1 * v1 rounded to float32: large tensors stream through it, and `run` drives it over the whole tensor.
 */
function slerpStream(t: number): StreamingMerge {
  const sums = new Float64Array(3);
  let s0 = 0;
  let s1 = 0;
  return {
    passes: 1,
    observe(_pass: number, chunk: StreamChunk): void {
      addGram2(chunk.base!, chunk.models[0]!, sums);
    },
    endPass(): void {
      [s0, s1] = slerpWeights(t, sums[0]!, sums[1]!, sums[2]!);
    },
    emit(chunk: StreamChunk, out: Float32Array): void {
      const v0 = chunk.base!;
      const v1 = chunk.models[0]!;
      const n = v0.length;
      for (let i = 0; i < n; i++) out[i] = s0 * v0[i]! + s1 * v1[i]!;
    },
  };
}

/** The stream for a large tensor; undefined without a second model (a copy). */
function streamSlerp(input: StreamInput): StreamingMerge | undefined {
  if (!streams(input)) return undefined;
  const where = { method: "slerp", tensor: input.tensorName };
  return slerpStream(num(resolveParams(PARAMETERS, input.params, where), "t"));
}

function streams(input: StreamInput): boolean {
  return input.models === 1 && input.hasBase;
}

const PARAMETERS: ParamSpec[] = [
  {
    name: "t",
    type: "number",
    description: "interpolation factor: 0 gives the base model, 1 the other model (values outside extrapolate)",
  },
];

export const slerp = defineMethod({
  name: "slerp",
  title: "SLERP",
  reference: "Shoemake, Animating rotation with quaternion curves, SIGGRAPH 1985",
  mergekitRef: "mergekit/merge_methods/slerp.py",
  base: "required",
  models: { min: 0, max: 1 },
  random: false,
  parameters: PARAMETERS,
  modelParameters: [],
  run(ctx) {
    if (ctx.models.length === 0) return copyResult(ctx.base!);
    const [v0, v1] = rectifyCommon(ctx, [ctx.base!, ctx.models[0]!]) as [TensorData, TensorData];
    const chunk = { start: 0, base: v0.data, models: [v1.data] };
    const out = runStreamWhole(slerpStream(num(ctx.params, "t")), chunk, new Float32Array(v0.data.length));
    return { data: out, shape: [...v0.shape] };
  },
  streaming: streamSlerp,
  // three float64 sums and two weights: nothing beyond the engine's chunk buffers
  streamingBytes: (input) => (streams(input) ? 0 : undefined),
});
