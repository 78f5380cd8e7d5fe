// NearSwap: take the model's value where it is close to the base (alchemonaut, 2024, https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001); ref: mergekit/merge_methods/nearswap.py
//
// Elementwise: w = clamp(t / max(|base - model|, 1e-6), 0, 1); result = w * model + (1 - w) * base. Entries that
// differ by at most t take the model's value; larger differences are pulled towards the base. t = 0 gives the base.
// Embeddings of different sizes are cropped to their common block (mergekit does not rectify here).

import { copyResult, defineMethod } from "../define.js";
import { num } from "../params.js";
import { rectifyCommon } from "../rectify.js";
import type { TensorData } from "../types.js";

export const nearswap = defineMethod({
  name: "nearswap",
  title: "NearSwap",
  reference: "alchemonaut, NearSwap, 2024, https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001",
  mergekitRef: "mergekit/merge_methods/nearswap.py",
  base: "required",
  models: { min: 0, max: 1 },
  random: false,
  elementwise: () => true,
  parameters: [
    { name: "t", type: "number", min: 0, description: "similarity threshold: |base - model| <= t swaps in the model" },
  ],
  modelParameters: [],
  run(ctx) {
    if (ctx.models.length === 0) return copyResult(ctx.base!);
    const [base, model] = rectifyCommon(ctx, [ctx.base!, ctx.models[0]!]) as [TensorData, TensorData];
    const t = num(ctx.params, "t");
    const a = base.data;
    const b = model.data;
    const n = a.length;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const ai = a[i]!;
      const bi = b[i]!;
      const diff = Math.fround(Math.abs(ai - bi));
      const w = Math.min(1, Math.fround(t / Math.max(diff, 1e-6))); // t >= 0, so w >= 0 (NaN propagates)
      out[i] = w * bi + (1 - w) * ai;
    }
    return { data: out, shape: [...base.shape] };
  },
});
