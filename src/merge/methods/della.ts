// DELLA-Merging (Deep et al., 2024, arXiv:2406.11617); ref: mergekit/merge_methods/generalized_task_arithmetic.py

import { defineTaskArithmetic } from "../task-arithmetic-core.js";

// MAGPRUNE: keep each entry with probability (density - epsilon) + 2 epsilon * rank / (len - 1), rank of |delta|
// within its row (seeded Bernoulli mask); density +/- epsilon must lie in (0, 1) unless density >= 1. Survivors
// are rescaled by the L1 ratio when `rescale` (default on), then TIES sign election and averaging.

export const della = defineTaskArithmetic({
  name: "della",
  title: "DELLA",
  reference:
    "Deep et al., DELLA-Merging: Reducing Interference in Model Merging through Magnitude-Based Sampling, 2024, arXiv:2406.11617",
  consensus: "sum",
  sparsification: "della_magprune",
  defaultNormalize: true,
  defaultRescale: true,
});
