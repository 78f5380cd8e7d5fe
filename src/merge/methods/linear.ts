// Linear averaging / model soups (Wortsman et al., 2022, arXiv:2203.05482); ref: mergekit/merge_methods/linear.py
//
// result = sum_i w_i * x_i, divided by sum_i w_i when `normalize` (the default). Embedding tensors of different
// vocabulary sizes are cropped to their common top-left block. Divergence from mergekit: with `normalize` and
// weights summing to zero mergekit divides by zero (inf / NaN output); fusionkit rejects that with MERGE_INVALID.

import { defineMethod, mergeError } from "../define.js";
import { bool, num } from "../params.js";
import { rectifyCommon } from "../rectify.js";

export const linear = defineMethod({
  name: "linear",
  title: "Linear",
  reference: "Wortsman et al., Model soups, 2022, arXiv:2203.05482",
  mergekitRef: "mergekit/merge_methods/linear.py",
  base: "unused",
  models: { min: 1 },
  random: false,
  parameters: [{ name: "normalize", type: "boolean", default: true, description: "divide by the sum of the weights" }],
  modelParameters: [{ name: "weight", type: "number", description: "weight of this model" }],
  run(ctx) {
    const ts = rectifyCommon(ctx, ctx.models);
    const w = ctx.modelParams.map((p) => Math.fround(num(p, "weight")));
    const n = ts[0]!.data.length;
    const out = new Float32Array(n);
    // float32 products summed in model order, as torch's (weights * stacked).sum(0).
    for (let i = 0; i < ts.length; i++) {
      const x = ts[i]!.data;
      const wi = w[i]!;
      if (i === 0) for (let j = 0; j < n; j++) out[j] = x[j]! * wi;
      else for (let j = 0; j < n; j++) out[j] = out[j]! + Math.fround(x[j]! * wi);
    }
    if (bool(ctx.params, "normalize")) {
      let sum = 0;
      let sumAbs = 0;
      for (const wi of w) {
        sum = Math.fround(sum + wi);
        sumAbs += Math.abs(wi);
      }
      if (sum === 0 || Math.abs(sum) <= 1e-6 * sumAbs) {
        throw mergeError(
          ctx,
          `weights [${w.join(", ")}] sum to ${sum} with normalize: true (division by zero); ` +
            "set normalize: false or change the weights",
          "weight",
        );
      }
      for (let j = 0; j < n; j++) out[j] = out[j]! / sum;
    }
    return { data: out, shape: [...ts[0]!.shape] };
  },
});
