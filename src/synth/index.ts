export * from "./llama.js";
