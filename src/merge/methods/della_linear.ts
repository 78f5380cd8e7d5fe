// DELLA with linear combination (Deep et al., 2024, arXiv:2406.11617); ref: mergekit/merge_methods/generalized_task_arithmetic.py

import { defineTaskArithmetic } from "../task-arithmetic-core.js";

// MAGPRUNE sparsification (rank-dependent keep probabilities, see della.ts) followed by task arithmetic.

export const dellaLinear = defineTaskArithmetic({
  name: "della_linear",
  title: "Linear DELLA",
  reference: "Deep et al., DELLA-Merging, 2024, arXiv:2406.11617",
  consensus: null,
  sparsification: "della_magprune",
  defaultNormalize: false,
  defaultRescale: true,
});
