/** Evaluation: metrics and (backbone, head) evaluation on task splits. */
export * from "./evaluate.js";
export * from "./metrics.js";
export * from "./run.js";
