// Model Stock (Jang et al., 2024, arXiv:2403.19522); ref: mergekit/merge_methods/model_stock.py
//
// With base w0 and N >= 2 fine-tuned models w_i: cos = mean over pairs i < j of the cosine between the offsets
// (w_i - w0) and (w_j - w0) (norm product clamped to >= 1e-6, cosine clamped to [-1, 1]);
// t = N cos / (1 + (N - 1) cos); result = t * mean_i(w_i) + (1 - t) * w0. `filter_wise` computes one angle per
// row (slices along the last dim; a 1-D tensor is one row) instead of one for the whole tensor. Embeddings are
// cropped to their common block. Divergence: when 1 + (N - 1) cos = 0 (perfectly anti-correlated offsets)
// mergekit divides by zero; fusionkit rejects it.

import { copyResult, defineMethod, mergeError } from "../define.js";
import { bool } from "../params.js";
import { rectifyCommon } from "../rectify.js";

export const modelStock = defineMethod({
  name: "model_stock",
  title: "Model Stock",
  reference: "Jang et al., Model Stock: All we need is just a few fine-tuned models, 2024, arXiv:2403.19522",
  mergekitRef: "mergekit/merge_methods/model_stock.py",
  base: "required",
  models: { min: 0 },
  random: false,
  parameters: [
    { name: "filter_wise", type: "boolean", default: false, description: "one interpolation ratio per row" },
  ],
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
    const off = new Float64Array(k);
    const pairs = (k * (k - 1)) / 2;
    for (let s = 0; s < n; s += rowLen) {
      gram.fill(0);
      for (let j = s; j < s + rowLen; j++) {
        const b = w0[j]!;
        for (let i = 0; i < k; i++) off[i] = Math.fround(ws[i]![j]! - b);
        for (let i = 0; i < k; i++) {
          const oi = off[i]!;
          for (let m = i; m < k; m++) gram[i * k + m] += oi * off[m]!;
        }
      }
      let cosSum = 0;
      for (let i = 0; i < k; i++) {
        for (let m = i + 1; m < k; m++) {
          const normProduct = Math.sqrt(gram[i * k + i]!) * Math.sqrt(gram[m * k + m]!);
          const cos = gram[i * k + m]! / Math.max(normProduct, 1e-6);
          cosSum += Math.min(1, Math.max(-1, cos));
        }
      }
      const cos = cosSum / pairs;
      const denom = 1 + (k - 1) * cos;
      if (denom === 0) {
        throw mergeError(ctx, "the offsets from the base are perfectly anti-correlated (1 + (N-1) cos = 0)");
      }
      const t = (k * cos) / denom;
      for (let j = s; j < s + rowLen; j++) {
        let sum = 0;
        for (let i = 0; i < k; i++) sum = Math.fround(sum + ws[i]![j]!);
        out[j] = t * Math.fround(sum / k) + (1 - t) * w0[j]!;
      }
    }
    return { data: out, shape };
  },
});
