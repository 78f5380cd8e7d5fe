// Model Breadcrumbs with TIES sign election (Davari & Belilovsky, 2024, arXiv:2312.06795); ref: mergekit/merge_methods/generalized_task_arithmetic.py

import { defineTaskArithmetic } from "../task-arithmetic-core.js";

// Breadcrumbs sparsification (drop top-gamma outliers and the smallest entries) followed by TIES sign election.
// When int(gamma * numel) == 0 nothing survives and the output is the base, as in mergekit.

export const breadcrumbsTies = defineTaskArithmetic({
  name: "breadcrumbs_ties",
  title: "Model Breadcrumbs with TIES",
  reference: "Davari & Belilovsky, Model Breadcrumbs, ECCV 2024, arXiv:2312.06795; TIES: arXiv:2306.01708",
  consensus: "sum",
  sparsification: "magnitude_outliers",
  defaultNormalize: false,
  defaultRescale: false,
});
