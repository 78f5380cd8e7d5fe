// SCE: Select, Calculate, Erase (Wan et al., FuseChat, 2024, arXiv:2408.07990); ref: mergekit/merge_methods/sce.py
//
// Task vectors tv_i = model_i - base. Select: if select_topk < 1, keep only the k = int(count_nonzero(var) *
// select_topk) elements (float32 product, as torch computes it) with the largest variance across models, in
// every task vector. Calculate: model weights mean(tv_i^2), normalised to sum 1 (uniform when their sum is
// < 1e-6). Erase: per element, drop task vectors whose sign disagrees with the elected sign of sum_i tv_i
// (ties elect +). Result = base + sum_i w_i e_i tv_i / max(sum_i w_i e_i, 1e-6).
// Known mergekit bug: when k == 0 (e.g. identical models, so every variance is 0) mergekit's mask has the shape
// of the stacked task vectors and its output wrongly gets shape [N, ...]; the intended result, returned here,
// is the base (every task vector is masked out). `int8_mask` has no numeric effect (accepted for compatibility).
// Embeddings of different sizes are cropped to their common block (mergekit does not rectify here; see rectify.ts).

import { topKMagnitudeMask } from "../../tensor/kernels.js";
import { copyResult, defineMethod } from "../define.js";
import { num } from "../params.js";
import { rectifyCommon } from "../rectify.js";
import type { TensorData } from "../types.js";

export const sce = defineMethod({
  name: "sce",
  title: "SCE",
  reference: "Wan et al., FuseChat: Knowledge Fusion of Chat Models, 2024, arXiv:2408.07990",
  mergekitRef: "mergekit/merge_methods/sce.py",
  base: "required",
  models: { min: 0 },
  random: false,
  parameters: [
    { name: "int8_mask", type: "boolean", default: false, description: "mergekit memory option; no numeric effect" },
    {
      name: "select_topk",
      type: "number",
      default: 1,
      min: 0,
      max: 1,
      description: "fraction of elements (by variance across models) kept",
    },
  ],
  modelParameters: [],
  run(ctx) {
    const k = ctx.models.length;
    if (k === 0) return copyResult(ctx.base!);
    const [base, ...models] = rectifyCommon(ctx, [ctx.base!, ...ctx.models]) as [TensorData, ...TensorData[]];
    const b = base.data;
    const n = b.length;
    const xs = models.map((m) => m.data);
    const shape = [...base.shape];

    // Select: variance mask (null = keep everything).
    const topk = num(ctx.params, "select_topk");
    let keep: Uint8Array | null = null;
    if (topk < 1) {
      if (topk <= 0) return copyResult(base);
      const variance = new Float32Array(n);
      let nonzero = 0;
      for (let j = 0; j < n; j++) {
        const bj = b[j]!;
        let mean = 0;
        for (let i = 0; i < k; i++) mean += Math.fround(xs[i]![j]! - bj);
        mean /= k;
        let v = 0;
        for (let i = 0; i < k; i++) {
          const d = Math.fround(xs[i]![j]! - bj) - mean;
          v += d * d;
        }
        const vj = Math.fround(v / k);
        variance[j] = vj;
        if (vj !== 0) nonzero++;
      }
      const count = Math.trunc(Math.fround(Math.fround(nonzero) * Math.fround(topk)));
      if (count === 0) return copyResult(base); // the intended result of mergekit's k == 0 branch (see above)
      keep = topKMagnitudeMask(variance, count, new Uint8Array(n));
    }

    // Calculate: weights from the mean squared (masked) task vectors.
    const w = new Array<number>(k).fill(0);
    for (let i = 0; i < k; i++) {
      const x = xs[i]!;
      let s = 0;
      for (let j = 0; j < n; j++) {
        if (keep !== null && keep[j] === 0) continue;
        const d = Math.fround(x[j]! - b[j]!);
        s += d * d;
      }
      w[i] = Math.fround(s / n);
    }
    let wsum = 0;
    for (const x of w) wsum = Math.fround(wsum + x);
    for (let i = 0; i < k; i++) w[i] = Math.abs(wsum) < 1e-6 ? Math.fround(1 / k) : Math.fround(w[i]! / wsum);

    // Erase and merge.
    const out = new Float32Array(n);
    const tv = new Float32Array(k);
    for (let j = 0; j < n; j++) {
      const bj = b[j]!;
      if (keep !== null && keep[j] === 0) {
        out[j] = bj;
        continue;
      }
      let vote = 0;
      for (let i = 0; i < k; i++) {
        const d = Math.fround(xs[i]![j]! - bj);
        tv[i] = d;
        vote = Math.fround(vote + d);
      }
      const positive = vote >= 0;
      let merged = 0;
      let wsel = 0;
      for (let i = 0; i < k; i++) {
        const d = tv[i]!;
        if (positive ? d > 0 : d < 0) {
          merged = Math.fround(merged + Math.fround(d * w[i]!));
          wsel = Math.fround(wsel + w[i]!);
        }
      }
      out[j] = bj + Math.fround(merged / Math.max(wsel, 1e-6));
    }
    return { data: out, shape };
  },
});
