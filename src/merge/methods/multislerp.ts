// Multi-SLERP: barycentric interpolation on the hypersphere (Goddard, 2025, goddard.blog "multislerp-wow-what-a-cool-idea"); ref: mergekit/merge_methods/multislerp.py
//
// Each (task) vector x_i (model - base when a base is given) is projected to the unit sphere, u_i = x_i /
// (|x_i| + eps); their weighted mean M = sum w_i u_i is normalised to m; mergekit then maps the weighted mean of
// the tangent vectors u_i - (u_i . m) m back with the exponential map. That tangent mean is identically zero
// (sum w_i u_i - (M . m) m = M - |M| m = 0), so the result is exactly m * avg_norm with avg_norm = sum w_i |x_i|
// (mergekit's float32 evaluation differs from this only by rounding noise). Weights are normalised to sum 1 by
// default. If |M| < eps: two models fall back to w0 x0 + w1 x1; more models are rejected (antipodal inputs).
// Divergences: normalize_weights with weights summing to 0 is rejected (mergekit divides by zero); embeddings of
// different sizes are cropped to their common block (mergekit does not rectify here).

import { sumSquares } from "../../tensor/kernels.js";
import { copyResult, defineMethod, mergeError } from "../define.js";
import { bool, num } from "../params.js";
import { rectifyCommon } from "../rectify.js";

export const multislerp = defineMethod({
  name: "multislerp",
  title: "Multi-SLERP",
  reference: "Goddard, Multi-SLERP, 2025, https://goddard.blog/posts/multislerp-wow-what-a-cool-idea",
  mergekitRef: "mergekit/merge_methods/multislerp.py",
  base: "optional",
  models: { min: 1 },
  random: false,
  parameters: [
    { name: "normalize_weights", type: "boolean", default: true, description: "scale the weights to sum to 1" },
    { name: "eps", type: "number", default: 1e-8, min: 0, description: "numerical floor for norms" },
  ],
  modelParameters: [{ name: "weight", type: "number", description: "barycentric weight of this model" }],
  run(ctx) {
    if (ctx.models.length === 1) return copyResult(ctx.models[0]!);
    const ts = rectifyCommon(ctx, ctx.base === undefined ? ctx.models : [...ctx.models, ctx.base]);
    const models = ts.slice(0, ctx.models.length);
    const base = ctx.base === undefined ? undefined : ts[ts.length - 1]!;
    const eps = num(ctx.params, "eps");
    let w = ctx.modelParams.map((p) => Math.fround(num(p, "weight")));
    if (bool(ctx.params, "normalize_weights")) {
      let sum = 0;
      for (const x of w) sum = Math.fround(sum + x);
      if (sum === 0) throw mergeError(ctx, `weights [${w.join(", ")}] sum to 0 with normalize_weights: true`, "weight");
      w = w.map((x) => Math.fround(x / sum));
    }
    const n = models[0]!.data.length;
    const k = models.length;
    // Task vectors (float32, as mergekit subtracts the base in place) only when a base is given.
    const xs = models.map((m) => {
      if (base === undefined) return m.data;
      const d = new Float32Array(n);
      const b = base.data;
      for (let j = 0; j < n; j++) d[j] = m.data[j]! - b[j]!;
      return d;
    });
    const norms = xs.map((x) => Math.sqrt(sumSquares(x)));
    const c = norms.map((nm, i) => w[i]! / (nm + eps));
    const mean = new Float64Array(n);
    for (let i = 0; i < k; i++) {
      const x = xs[i]!;
      const ci = c[i]!;
      for (let j = 0; j < n; j++) mean[j] += ci * x[j]!;
    }
    let mm = 0;
    for (let j = 0; j < n; j++) mm += mean[j]! * mean[j]!;
    const meanNorm = Math.sqrt(mm);
    const out = new Float32Array(n);
    if (meanNorm < eps) {
      if (k !== 2) {
        throw mergeError(
          ctx,
          "the weighted sum of the unit-normalised inputs is zero (antipodal vectors whose weights balance out); " +
            "use different weights",
        );
      }
      const [x0, x1] = xs as [Float32Array, Float32Array];
      for (let j = 0; j < n; j++) out[j] = x0[j]! * w[0]! + x1[j]! * w[1]!;
    } else {
      let avgNorm = 0;
      for (let i = 0; i < k; i++) avgNorm += norms[i]! * w[i]!;
      const s = avgNorm / meanNorm;
      for (let j = 0; j < n; j++) out[j] = mean[j]! * s;
    }
    if (base !== undefined) for (let j = 0; j < n; j++) out[j] = out[j]! + base.data[j]!;
    return { data: out, shape: [...models[0]!.shape] };
  },
});
