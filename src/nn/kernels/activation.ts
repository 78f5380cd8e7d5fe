/**
 * In-place activations for the fused kernels (_FusedMatMul, FusedConv2D): tfjs's `linear`, `relu`, `relu6`, `elu`,
 * `leakyrelu`, `sigmoid` (prelu falls back to the cpu kernel). One loop per activation so each stays monomorphic.
 */

export const FUSED_ACTIVATIONS = new Set(["linear", "relu", "relu6", "elu", "leakyrelu", "sigmoid"]);

export function applyActivation(y: Float32Array, activation: string, leakyreluAlpha = 0.2): void {
  const n = y.length;
  switch (activation) {
    case "linear":
      return;
    case "relu":
      // branch-free: the sign of pre-activations is random, a mispredicted branch per element costs 4x
      for (let i = 0; i < n; i++) {
        const v = y[i];
        y[i] = v === Number.NEGATIVE_INFINITY ? 0 : v * Number(v > 0);
      }
      return;
    case "relu6":
      for (let i = 0; i < n; i++) y[i] = Math.min(Math.max(y[i], 0), 6);
      return;
    case "elu":
      for (let i = 0; i < n; i++) {
        const v = y[i];
        if (v < 0) y[i] = Math.exp(v) - 1;
      }
      return;
    case "leakyrelu":
      for (let i = 0; i < n; i++) {
        const v = y[i];
        if (v < 0) y[i] = v * leakyreluAlpha;
      }
      return;
    case "sigmoid":
      for (let i = 0; i < n; i++) y[i] = 1 / (1 + Math.exp(-y[i]));
      return;
    default:
      throw new Error(`fusionkit: unsupported fused activation ${activation}`);
  }
}

/** Fill `out` (rows x n, row-major) with the length-n bias repeated on every row. */
export function fillRows(out: Float32Array, bias: Float32Array, n: number): void {
  const rows = out.length / n;
  for (let r = 0; r < rows; r++) out.set(bias, r * n);
}
