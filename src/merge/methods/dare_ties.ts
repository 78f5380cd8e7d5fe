// DARE + TIES (Yu et al., 2024, arXiv:2311.03099; Yadav et al., 2023, arXiv:2306.01708); ref: mergekit/merge_methods/generalized_task_arithmetic.py

import { defineTaskArithmetic } from "../task-arithmetic-core.js";

// Drop each task-vector entry with probability 1 - density (seeded Bernoulli mask keyed by seed, tensor name and
// model index), rescale survivors by L1(delta) / L1(kept delta) when `rescale` (the default; not 1/density),
// then TIES sign election and averaging.

export const dareTies = defineTaskArithmetic({
  name: "dare_ties",
  title: "DARE TIES",
  reference: "Yu et al., Language Models are Super Mario (DARE), ICML 2024, arXiv:2311.03099",
  consensus: "sum",
  sparsification: "random",
  defaultNormalize: false,
  defaultRescale: true,
});
