/**
 * Optional native GEMM: row-major `sgemm` (C = alpha * op(A) * op(B) + beta * C, CBLAS transpose codes) from oneDNN
 * (our addon native/dnnl-gemm, built at install against Debian's libdnnl-dev) or from the system BLAS through `nblas`
 * (Debian: libopenblas-dev), and `sgemv`. oneDNN comes first: its JIT kernels use the AVX-512 units these machines
 * have (2-4x OpenBLAS's forced Haswell kernels on the nn shapes, see docs/ARCHITECTURE.md). FUSIONKIT_GEMM=openblas
 * or =onednn picks one. Loading never throws; `blas()` is null when neither loads, and `blasLoadError()` says why.
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

export type GemmLibrary = "onednn" | "openblas";
export const GEMM_LIBRARIES: readonly GemmLibrary[] = ["onednn", "openblas"];

/**
 * Which way round the convolution kernels lay out their products for this library: `planes` computes C^T (one plane
 * per output channel, the long side as N), which OpenBLAS's Haswell kernels run faster with few channels; oneDNN
 * runs the channels-last C (long side as M) faster. Measured on the bench CNN: docs/ARCHITECTURE.md.
 */
export interface GemmLayout {
  planes: boolean;
}

export interface Blas extends GemmLayout {
  sgemm: Sgemm;
  sgemv: Sgemv;
  /** Which library computes sgemm. */
  library: GemmLibrary;
  /** e.g. "oneDNN 2.6.3" or "OpenBLAS (nblas)". */
  description: string;
}

const require = createRequire(import.meta.url);
/** The oneDNN addon's build output, from src/nn and dist/nn alike. */
const DNNL_ADDON = "../../native/dnnl-gemm/build/Release/fusionkit_dnnl_gemm.node";

/** Throws unless `sgemm` computes a 2 x 2 product (proves the library links and computes, row-major). */
function check(sgemm: Sgemm, what: string): void {
  const c = new Float32Array(4);
  sgemm(NO_TRANS, TRANS, 2, 2, 2, 1, new Float32Array([1, 2, 3, 4]), 2, new Float32Array([5, 7, 6, 8]), 2, 0, c, 2);
  if (c[0] !== 19 || c[1] !== 22 || c[2] !== 43 || c[3] !== 50) throw new Error(`${what} sgemm gave ${c.join(",")}`);
}

function loadOneDnn(): { sgemm: Sgemm; version: string } {
  const mod = require(DNNL_ADDON) as { sgemm?: Sgemm; version?: string };
  if (typeof mod.sgemm !== "function") throw new Error("the oneDNN addon lacks sgemm");
  check(mod.sgemm, "oneDNN");
  return { sgemm: mod.sgemm, version: mod.version ?? "?" };
}

function loadNblas(): { sgemm: Sgemm; sgemv: Sgemv } {
  const mod = require("nblas") as { sgemm?: Sgemm; sgemv?: Sgemv };
  if (typeof mod.sgemm !== "function" || typeof mod.sgemv !== "function") throw new Error("nblas lacks sgemm/sgemv");
  check(mod.sgemm, "nblas");
  return { sgemm: mod.sgemm, sgemv: mod.sgemv };
}

/** sgemv by sgemm (n = 1), for unit strides (all the nn kernels use). */
function gemvByGemm(sgemm: Sgemm): Sgemv {
  return (trans, m, n, alpha, a, lda, x, incx, beta, y, incy) => {
    if (incx !== 1 || incy !== 1) throw new Error("sgemv without nblas takes unit strides only");
    if (trans === TRANS) sgemm(TRANS, NO_TRANS, n, 1, m, alpha, a, lda, x, 1, beta, y, 1);
    else sgemm(NO_TRANS, NO_TRANS, m, 1, n, alpha, a, lda, x, 1, beta, y, 1);
  };
}

/** One library's sgemm, loaded and checked; throws when it does not load (for tests and benchmarks). */
export function loadGemm(library: GemmLibrary): Sgemm {
  return library === "onednn" ? loadOneDnn().sgemm : loadNblas().sgemm;
}

function message(err: unknown): string {
  return err instanceof Error ? (err.message.split("\n")[0] ?? "") : String(err);
}

let loaded: Blas | null | undefined;
let loadError: string | undefined;

/** The native GEMM (see the top of this file), or null when none loads (checked once). */
export function blas(): Blas | null {
  if (loaded !== undefined) return loaded;
  const want = process.env.FUSIONKIT_GEMM?.trim().toLowerCase() || undefined;
  if (want !== undefined && !GEMM_LIBRARIES.includes(want as GemmLibrary))
    throw new Error(`FUSIONKIT_GEMM=${want}: expected one of ${GEMM_LIBRARIES.join(", ")}`);
  const errors: string[] = [];
  let dnnl: { sgemm: Sgemm; version: string } | null = null;
  let nb: { sgemm: Sgemm; sgemv: Sgemv } | null = null;
  if (want !== "openblas") {
    try {
      dnnl = loadOneDnn();
    } catch (err) {
      errors.push(`oneDNN addon: ${message(err)}`);
    }
  }
  try {
    nb = loadNblas();
  } catch (err) {
    errors.push(`nblas: ${message(err)}`);
  }
  if (dnnl !== null)
    loaded = {
      sgemm: dnnl.sgemm,
      // not nblas's sgemv even when it loads: two thread pools (OpenMP's and OpenBLAS's), each spinning after its
      // calls, slow each other down
      sgemv: gemvByGemm(dnnl.sgemm),
      library: "onednn",
      description: `oneDNN ${dnnl.version}`,
      planes: false,
    };
  else if (nb !== null && want !== "onednn")
    loaded = { ...nb, library: "openblas", description: "OpenBLAS (nblas)", planes: true };
  else loaded = null;
  loadError = errors.length > 0 ? errors.join("; ") : undefined;
  return loaded;
}

/** Why `blas()` is null, or why a library is missing when it is not (undefined when all loaded or none was tried). */
export function blasLoadError(): string | undefined {
  return loadError;
}
