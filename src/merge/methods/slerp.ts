// Spherical linear interpolation (Shoemake, 1985, "Animating rotation with quaternion curves"); ref: mergekit/merge_methods/slerp.py
//
// Interpolates base (t = 0) -> model (t = 1) along the great circle through the two flattened tensors, with
// the original magnitudes kept: s0 * v0 + s1 * v1 with s0 = sin((1-t) theta) / sin theta, s1 = sin(t theta) /
// sin theta, where cos theta is the cosine of the angle between them. When |cos theta| > 0.9995 (nearly
// (anti)parallel, including cos = -1) it falls back to plain lerp, like mergekit. A vector of norm <= 1e-8 is
// not normalised (mergekit's rule). Norms and dot products accumulate in float64.

import { dot, sumSquares } from "../../tensor/kernels.js";
import { copyResult, defineMethod } from "../define.js";
import { num } from "../params.js";
import { rectifyCommon } from "../rectify.js";

const DOT_THRESHOLD = 0.9995;
const NORM_EPS = 1e-8;

/** out = slerp(t, v0, v1) over the whole (flattened) arrays, mergekit semantics. */
export function slerpInto(t: number, v0: Float32Array, v1: Float32Array, out: Float32Array): Float32Array {
  const n0 = Math.sqrt(sumSquares(v0));
  const n1 = Math.sqrt(sumSquares(v1));
  const cos = dot(v0, v1) / ((n0 > NORM_EPS ? n0 : 1) * (n1 > NORM_EPS ? n1 : 1));
  let s0: number;
  let s1: number;
  if (Math.abs(cos) > DOT_THRESHOLD) {
    s0 = 1 - t;
    s1 = t;
  } else {
    const theta0 = Math.acos(cos);
    const sin0 = Math.sin(theta0);
    const thetaT = theta0 * t;
    s0 = Math.sin(theta0 - thetaT) / sin0;
    s1 = Math.sin(thetaT) / sin0;
  }
  const n = v0.length;
  for (let i = 0; i < n; i++) out[i] = s0 * v0[i]! + s1 * v1[i]!;
  return out;
}

export const slerp = defineMethod({
  name: "slerp",
  title: "SLERP",
  reference: "Shoemake, Animating rotation with quaternion curves, SIGGRAPH 1985",
  mergekitRef: "mergekit/merge_methods/slerp.py",
  base: "required",
  models: { min: 0, max: 1 },
  random: false,
  parameters: [
    {
      name: "t",
      type: "number",
      description: "interpolation factor: 0 gives the base model, 1 the other model (values outside extrapolate)",
    },
  ],
  modelParameters: [],
  run(ctx) {
    if (ctx.models.length === 0) return copyResult(ctx.base!);
    const ts = rectifyCommon(ctx, [ctx.base!, ctx.models[0]!]);
    const v0 = ts[0]!;
    const v1 = ts[1]!;
    const out = slerpInto(num(ctx.params, "t"), v0.data, v1.data, new Float32Array(v0.data.length));
    return { data: out, shape: [...v0.shape] };
  },
});
