// TIES-Merging (Yadav et al., 2023, arXiv:2306.01708); ref: mergekit/merge_methods/generalized_task_arithmetic.py

import { defineTaskArithmetic } from "../task-arithmetic-core.js";

// Trim each task vector to its k = int(density * numel) largest magnitudes (k = 0 is rejected, as in mergekit),
// elect a sign per element from the sum of the weighted deltas (ties elect +), and average the agreeing weighted
// deltas (divided by the sum of their weights when `normalize`, the default).

export const ties = defineTaskArithmetic({
  name: "ties",
  title: "TIES",
  reference: "Yadav et al., TIES-Merging: Resolving Interference When Merging Models, NeurIPS 2023, arXiv:2306.01708",
  consensus: "sum",
  sparsification: "magnitude",
  defaultNormalize: true,
  defaultRescale: false,
});
