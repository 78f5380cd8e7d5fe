// Generalized task arithmetic (mergekit/merge_methods/generalized_task_arithmetic.py): the shared engine of
// task_arithmetic, ties, dare_ties, dare_linear, breadcrumbs, breadcrumbs_ties, della and della_linear.
//
//   delta_i  = model_i - base                     (embeddings: all cropped to the common block, see rectify.ts)
//   delta_i  = sparsify(delta_i, density_i, ...)  (optional; rescaled by L1 ratio when `rescale`)
//   wd_i     = weight_i * delta_i
//   with consensus:  keep wd_i where sign(wd_i) == elected sign;  mixed = sum kept wd_i;
//                    divisor = sum of the kept weights, 0 -> 1
//   without:         mixed = sum wd_i;  divisor = sum weight_i, |divisor| < 1e-8 -> 1
//   mixed /= divisor (if normalize);  mixed *= lambda;  result = base + mixed
//
// Arithmetic follows mergekit's float32 order (deltas, products and the sums over models are rounded to float32
// as torch computes them), so sign elections match mergekit bit for bit. Memory: one float32 scratch delta and
// one byte mask per sparsified model; the deltas themselves are recomputed in the final pass, not stored.
//
// `int8_mask` only changes the dtype of mergekit's intermediate mask; it has no numeric effect and is accepted
// for config compatibility.

import type { ConsensusMethod } from "./consensus.js";
import { copyResult, defineMethod, type MergeContext } from "./define.js";
import { bool, num } from "./params.js";
import { rectifyCommon } from "./rectify.js";
import { type SparsificationMethod, type SparsityMask, sparsityMask } from "./sparsify.js";
import type { MergeMethodSpec, MergeResult, ParamSpec, TensorData } from "./types.js";

export interface TaskArithmeticOptions {
  name: string;
  title: string;
  reference: string;
  consensus: ConsensusMethod | null;
  sparsification: SparsificationMethod | null;
  defaultNormalize: boolean;
  defaultRescale: boolean;
}

const MERGEKIT_REF = "mergekit/merge_methods/generalized_task_arithmetic.py, mergekit/sparsify.py";

/** The global parameters shared by the family. */
function globalParams(o: TaskArithmeticOptions): ParamSpec[] {
  return [
    { name: "int8_mask", type: "boolean", default: false, description: "mergekit memory option; no numeric effect" },
    { name: "normalize", type: "boolean", default: o.defaultNormalize, description: "divide by the sum of weights" },
    { name: "rescale", type: "boolean", default: o.defaultRescale, description: "rescale kept entries by L1 ratio" },
    { name: "lambda", type: "number", default: 1, description: "scale of the merged task vector" },
  ];
}

function modelParams(o: TaskArithmeticOptions): ParamSpec[] {
  const res: ParamSpec[] = [
    { name: "weight", type: "number", description: "weight of this model's task vector" },
    {
      name: "density",
      type: "number",
      default: 1,
      min: 0,
      minExclusive: true,
      max: 1,
      description: "fraction of the task vector kept by sparsification",
    },
  ];
  if (o.sparsification === "magnitude_outliers") {
    res.push({
      name: "gamma",
      type: "number",
      default: 0.01,
      min: 0,
      max: 1,
      description: "fraction of the largest-magnitude entries dropped as outliers",
    });
  }
  if (o.sparsification === "della_magprune") {
    res.push({
      name: "epsilon",
      type: "number",
      default: 0.15,
      min: 0,
      max: 1,
      maxExclusive: true,
      description: "keep probabilities span density +/- epsilon by magnitude rank",
    });
  }
  return res;
}

/** Define one member of the family. */
export function defineTaskArithmetic(o: TaskArithmeticOptions): MergeMethodSpec {
  return defineMethod({
    name: o.name,
    title: o.title,
    reference: o.reference,
    mergekitRef: MERGEKIT_REF,
    base: "required",
    models: { min: 0 },
    random: o.sparsification === "random" || o.sparsification === "della_magprune",
    parameters: globalParams(o),
    modelParameters: modelParams(o),
    run: (ctx) => runTaskArithmetic(ctx, o),
  });
}

function runTaskArithmetic(ctx: MergeContext, o: TaskArithmeticOptions): MergeResult {
  const nModels = ctx.models.length;
  if (nModels === 0) return copyResult(ctx.base!);
  const [base, ...models] = rectifyCommon(ctx, [ctx.base!, ...ctx.models]) as [TensorData, ...TensorData[]];
  const b = base.data;
  const n = b.length;
  const xs = models.map((m) => m.data);
  const w = ctx.modelParams.map((p) => Math.fround(num(p, "weight")));

  // Sparsify each task vector: a keep-mask and a rescale factor per model.
  const masks: SparsityMask[] = xs.map(() => ({ keep: null, scale: 1 }));
  if (o.sparsification !== null) {
    const rescaleNorm = bool(ctx.params, "rescale") ? "l1" : null;
    let delta: Float32Array | undefined;
    for (let i = 0; i < nModels; i++) {
      const p = ctx.modelParams[i]!;
      const density = num(p, "density");
      if (density >= 1) continue;
      delta ??= new Float32Array(n);
      const x = xs[i]!;
      for (let j = 0; j < n; j++) delta[j] = x[j]! - b[j]!;
      masks[i] = sparsityMask(delta, {
        method: o.sparsification,
        density,
        gamma: p.gamma as number | undefined,
        epsilon: p.epsilon as number | undefined,
        rescaleNorm,
        shape: base.shape,
        masks: ctx.masks,
        modelIndex: i,
        where: ctx,
      });
    }
  }

  const normalize = bool(ctx.params, "normalize");
  const lambda = Math.fround(num(ctx.params, "lambda"));
  const out = new Float32Array(n);
  const keeps = masks.map((m) => m.keep);
  const scales = masks.map((m) => m.scale);
  const wd = new Float32Array(nModels);

  if (o.consensus !== null) {
    const byCount = o.consensus === "count";
    for (let j = 0; j < n; j++) {
      const bj = b[j]!;
      let vote = 0;
      for (let i = 0; i < nModels; i++) {
        const keep = keeps[i];
        let d = 0;
        if (keep === null || keep[j] === 1) {
          d = Math.fround(xs[i]![j]! - bj);
          const s = scales[i]!;
          if (s !== 1) d = Math.fround(d * s);
        }
        const v = Math.fround(d * w[i]!);
        wd[i] = v;
        vote = byCount ? vote + Math.sign(v) : Math.fround(vote + v);
      }
      const positive = vote >= 0;
      let mixed = 0;
      let divisor = 0;
      for (let i = 0; i < nModels; i++) {
        const v = wd[i]!;
        if (positive ? v > 0 : v < 0) {
          mixed = Math.fround(mixed + v);
          divisor = Math.fround(divisor + w[i]!);
        }
      }
      if (normalize) mixed = Math.fround(mixed / (divisor === 0 ? 1 : divisor));
      if (lambda !== 1) mixed = Math.fround(mixed * lambda);
      out[j] = bj + mixed;
    }
  } else {
    let divisor = 0;
    for (let i = 0; i < nModels; i++) divisor = Math.fround(divisor + w[i]!);
    if (Math.abs(divisor) < 1e-8) divisor = 1;
    for (let j = 0; j < n; j++) {
      const bj = b[j]!;
      let mixed = 0;
      for (let i = 0; i < nModels; i++) {
        const keep = keeps[i];
        if (keep !== null && keep[j] === 0) continue;
        let d = Math.fround(xs[i]![j]! - bj);
        const s = scales[i]!;
        if (s !== 1) d = Math.fround(d * s);
        mixed = Math.fround(mixed + Math.fround(d * w[i]!));
      }
      if (normalize) mixed = Math.fround(mixed / divisor);
      if (lambda !== 1) mixed = Math.fround(mixed * lambda);
      out[j] = bj + mixed;
    }
  }
  return { data: out, shape: [...base.shape] };
}
