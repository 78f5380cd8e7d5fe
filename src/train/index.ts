/** Training: loops, probes, optimizers, schedules, checkpoints with sidecars. */
export * from "./checkpoint.js";
export * from "./loop.js";
export * from "./loss.js";
export * from "./optimizers.js";
export * from "./probe.js";
export * from "./run.js";
export * from "./schedule.js";
