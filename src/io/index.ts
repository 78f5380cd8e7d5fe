export * from "./atomic.js";
export * from "./model-dir.js";
export * from "./safetensors-header.js";
export * from "./safetensors-read.js";
export * from "./safetensors-write.js";
export * from "./sharded-write.js";
