export * from "./batches.js";
export * from "./fashion-mnist.js";
export * from "./idx.js";
export * from "./random.js";
export * from "./splits.js";
export * from "./tasks.js";
export type * from "./types.js";
