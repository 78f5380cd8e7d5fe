/**
 * Optional native BLAS: CBLAS `sgemm` (row-major C = alpha * op(A) * op(B) + beta * C) and `sgemv` through `nblas`,
 * which links the system BLAS (Debian: libopenblas-dev). Loading never throws; `blas()` is null when the binding is
 * missing or failed to build, and `blasLoadError()` says why.
 */
import { createRequire } from "node:module";

export const NO_TRANS = 111;
export const TRANS = 112;

/** cblas_sgemm in row-major order; typed-array views (subarray) are honoured through their byteOffset. */
export type Sgemm = (
  transA: number,
  transB: number,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: Float32Array,
  lda: number,
  b: Float32Array,
  ldb: number,
  beta: number,
  c: Float32Array,
  ldc: number,
) => void;

/** cblas_sgemv in row-major order: y = alpha * op(A) x + beta * y. */
export type Sgemv = (
  trans: number,
  m: number,
  n: number,
  alpha: number,
  a: Float32Array,
  lda: number,
  x: Float32Array,
  incx: number,
  beta: number,
  y: Float32Array,
  incy: number,
) => void;

export interface Blas {
  sgemm: Sgemm;
  sgemv: Sgemv;
}

let loaded: Blas | null | undefined;
let loadError: string | undefined;

/** The native BLAS binding, or null when it is not installed or does not load (checked once). */
export function blas(): Blas | null {
  if (loaded !== undefined) return loaded;
  try {
    const require = createRequire(import.meta.url);
    const mod = require("nblas") as { sgemm?: Sgemm; sgemv?: Sgemv };
    if (typeof mod.sgemm !== "function" || typeof mod.sgemv !== "function") throw new Error("nblas lacks sgemm/sgemv");
    const sgemm = mod.sgemm;
    // A 2x2 product proves the library really links and computes.
    const c = new Float32Array(4);
    sgemm(
      NO_TRANS,
      NO_TRANS,
      2,
      2,
      2,
      1,
      new Float32Array([1, 2, 3, 4]),
      2,
      new Float32Array([5, 6, 7, 8]),
      2,
      0,
      c,
      2,
    );
    if (c[0] !== 19 || c[1] !== 22 || c[2] !== 43 || c[3] !== 50) throw new Error(`nblas sgemm gave ${c.join(",")}`);
    loaded = { sgemm, sgemv: mod.sgemv };
  } catch (err) {
    loadError = err instanceof Error ? err.message.split("\n")[0] : String(err);
    loaded = null;
  }
  return loaded;
}

/** Why `blas()` is null (undefined when it loaded or was not tried yet). */
export function blasLoadError(): string | undefined {
  return loadError;
}
