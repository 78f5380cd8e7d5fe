// DARE with linear combination (Yu et al., 2024, arXiv:2311.03099); ref: mergekit/merge_methods/generalized_task_arithmetic.py

import { defineTaskArithmetic } from "../task-arithmetic-core.js";

// Drop each task-vector entry with probability 1 - density (seeded Bernoulli mask), rescale survivors by
// L1(delta) / L1(kept delta) when `rescale` (the default), then task arithmetic (no sign election).

export const dareLinear = defineTaskArithmetic({
  name: "dare_linear",
  title: "Linear DARE",
  reference: "Yu et al., Language Models are Super Mario (DARE), ICML 2024, arXiv:2311.03099",
  consensus: null,
  sparsification: "random",
  defaultNormalize: false,
  defaultRescale: true,
});
