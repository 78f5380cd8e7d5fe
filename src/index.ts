/** fusionkit's public API. */
export * from "./arch/index.js";
export * from "./config/index.js";
export * from "./engine/index.js";
export * from "./errors.js";
export * from "./io/index.js";
export { type InspectReport, type InspectTensor, inspect } from "./io/inspect.js";
export * from "./merge/index.js";
export * from "./synth/index.js";
export * from "./tensor/index.js";
