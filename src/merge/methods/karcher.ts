// Karcher (Riemannian) mean on the hypersphere (Karcher, 1977, "Riemannian center of mass and mollifier smoothing"); ref: mergekit/merge_methods/karcher.py
//
// Every model gets weight 1/N. Tensors are split into norm and direction; the directions' Karcher mean u is
// found by Riemannian gradient steps from their normalised weighted mean (at most `max_iter` steps, stopping when
// the tangent step's norm is below `tol`; a direction within angle `tol` of u adds nothing to a step); the result
// is u * sum_i |x_i| / N. Models with norm <= tol are left out of the direction but still count in the norm.
// Divergence: mergekit's embedding rectification in this method crops a temporary list and so has no effect
// (mismatched vocabularies then fail inside torch); fusionkit crops embeddings to their common block as intended
// (rectify.ts).
// Dot products and norms accumulate in float64; the running mean direction is stored in float32, as in mergekit.

import { dot, sumSquares } from "../../tensor/kernels.js";
import { copyResult, defineMethod } from "../define.js";
import { num } from "../params.js";
import { rectifyCommon } from "../rectify.js";

export const karcher = defineMethod({
  name: "karcher",
  title: "Karcher mean",
  reference: "Karcher, Riemannian center of mass and mollifier smoothing, CPAM 1977",
  mergekitRef: "mergekit/merge_methods/karcher.py",
  base: "unused",
  models: { min: 1 },
  random: false,
  parameters: [
    { name: "max_iter", type: "integer", default: 10, min: 0, description: "maximum gradient steps" },
    { name: "tol", type: "number", default: 1e-5, min: 0, description: "convergence / zero-norm tolerance" },
  ],
  modelParameters: [],
  run(ctx) {
    if (ctx.models.length === 1) return copyResult(ctx.models[0]!);
    const ts = rectifyCommon(ctx, ctx.models);
    const maxIter = num(ctx.params, "max_iter");
    const tol = num(ctx.params, "tol");
    const k = ts.length;
    const n = ts[0]!.data.length;
    const alpha = 1 / k;
    const norms = ts.map((t) => Math.fround(Math.sqrt(sumSquares(t.data))));
    const valid = norms.flatMap((nm, i) => (nm > tol ? [i] : []));
    const shape = [...ts[0]!.shape];
    if (valid.length === 0) return { data: new Float32Array(n), shape };
    const a = 1 / valid.length; // normalised alphas over the valid models (all equal)
    const xs = valid.map((i) => ts[i]!.data);
    const inv = valid.map((i) => 1 / norms[i]!); // unit_i = x_i * inv_i

    // Initial guess: the normalised weighted mean of the unit vectors.
    const u = new Float32Array(n);
    {
      const acc = new Float64Array(n);
      for (let v = 0; v < xs.length; v++) {
        const x = xs[v]!;
        const c = a * inv[v]!;
        for (let j = 0; j < n; j++) acc[j] += c * x[j]!;
      }
      let s = 0;
      for (let j = 0; j < n; j++) s += acc[j]! * acc[j]!;
      const normU = Math.sqrt(s);
      if (normU < tol) {
        const x = xs[0]!;
        const c = inv[0]!;
        for (let j = 0; j < n; j++) u[j] = x[j]! * c;
      } else for (let j = 0; j < n; j++) u[j] = acc[j]! / normU;
    }

    const T = new Float64Array(n);
    for (let iter = 0; iter < maxIter; iter++) {
      // T = sum_v a * theta_v / sin(theta_v) * (unit_v - cos_v * u) = sum_v k_v x_v - (sum_v k_v inv_v^-1 cos_v) u
      T.fill(0);
      let uCoef = 0;
      let any = false;
      for (let v = 0; v < xs.length; v++) {
        const cos = Math.min(1, Math.max(-1, dot(u, xs[v]!) * inv[v]!));
        const theta = Math.acos(cos);
        if (theta < tol) continue;
        const kv = (a * theta) / Math.sin(theta);
        const x = xs[v]!;
        const c = kv * inv[v]!;
        for (let j = 0; j < n; j++) T[j] += c * x[j]!;
        uCoef += kv * cos;
        any = true;
      }
      let tt = 0;
      if (any) {
        for (let j = 0; j < n; j++) {
          const tj = T[j]! - uCoef * u[j]!;
          T[j] = tj;
          tt += tj * tj;
        }
      }
      const normT = Math.sqrt(tt);
      if (normT < tol) break;
      const cosT = Math.cos(normT);
      const sinT = Math.sin(normT) / normT;
      let uu = 0;
      for (let j = 0; j < n; j++) {
        const v = Math.fround(cosT * u[j]! + sinT * T[j]!);
        u[j] = v;
        uu += v * v;
      }
      const normU = Math.sqrt(uu);
      if (normU > tol) for (let j = 0; j < n; j++) u[j] = u[j]! / normU;
    }

    let s = 0;
    for (let i = 0; i < k; i++) s += alpha * norms[i]!;
    const out = new Float32Array(n);
    for (let j = 0; j < n; j++) out[j] = s * u[j]!;
    return { data: out, shape };
  },
});
