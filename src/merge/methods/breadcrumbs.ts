// Model Breadcrumbs (Davari & Belilovsky, 2024, arXiv:2312.06795); ref: mergekit/merge_methods/generalized_task_arithmetic.py

import { defineTaskArithmetic } from "../task-arithmetic-core.js";

// Drop the int(gamma * numel) largest-magnitude entries of each task vector and enough of the smallest to keep
// int(density * numel), then task arithmetic. As in mergekit, when int(gamma * numel) == 0 (small tensors or
// gamma = 0) nothing survives and the output is the base (see sparsify.ts).

export const breadcrumbs = defineTaskArithmetic({
  name: "breadcrumbs",
  title: "Model Breadcrumbs",
  reference:
    "Davari & Belilovsky, Model Breadcrumbs: Scaling Multi-Task Model Merging with Sparse Masks, ECCV 2024, arXiv:2312.06795",
  consensus: null,
  sparsification: "magnitude_outliers",
  defaultNormalize: false,
  defaultRescale: false,
});
