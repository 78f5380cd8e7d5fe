/** Gradients that make the tfjs `wasm` backend usable for training (filled in below). */
export function registerWasmGradients(): void {}
