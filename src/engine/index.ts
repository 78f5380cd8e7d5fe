export * from "./describe.js";
export * from "./execute.js";
export * from "./merge.js";
export * from "./plan.js";
