// Task Arithmetic (Ilharco et al., 2023, arXiv:2212.04089); ref: mergekit/merge_methods/generalized_task_arithmetic.py

import { defineTaskArithmetic } from "../task-arithmetic-core.js";

// result = base + lambda * sum_i w_i (model_i - base), divided by sum_i w_i when `normalize` (a near-zero sum,
// |sum| < 1e-8, is replaced by 1 as in mergekit). `density` is declared (as in mergekit) but unused.

export const taskArithmetic = defineTaskArithmetic({
  name: "task_arithmetic",
  title: "Task Arithmetic",
  reference: "Ilharco et al., Editing Models with Task Arithmetic, ICLR 2023, arXiv:2212.04089",
  consensus: null,
  sparsification: null,
  defaultNormalize: false,
  defaultRescale: false,
});
