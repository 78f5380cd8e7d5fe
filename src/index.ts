/** fusionkit's public API. */
export * from "./errors.js";
export * from "./io/index.js";
export { type InspectReport, type InspectTensor, inspect } from "./io/inspect.js";
export * from "./tensor/index.js";
