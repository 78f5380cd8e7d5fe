/**
 * Backend selection: `fusionkit` (native GEMM: oneDNN or OpenBLAS, see blas.ts) when a binding loads, else `wasm` (with the kernels in
 * wasm-kernels.ts that make it train), else tfjs's `cpu`. `FUSIONKIT_BACKEND` (or the `backend` option) overrides;
 * the choice is reported once.
 */
import * as tf from "@tensorflow/tfjs";
import { FUSION_BACKEND } from "./backend.js";
import { blas, blasLoadError } from "./blas.js";
import { registerFusionBackend } from "./register.js";

export type NNBackendName = "fusionkit" | "wasm" | "cpu";
export const NN_BACKENDS: readonly NNBackendName[] = ["fusionkit", "wasm", "cpu"];

export interface NNBackendInfo {
  /** The active tfjs backend. */
  backend: NNBackendName;
  /** Whether a native GEMM (oneDNN addon or nblas) loaded. */
  native: boolean;
  /** The native GEMM library the fusionkit backend uses, e.g. "oneDNN 2.6.3", when one loaded. */
  gemm?: string;
  /** What was asked for (option or FUSIONKIT_BACKEND), when something was. */
  requested?: string;
  /** Why the fast backend is not active, when it is not. */
  reason?: string;
  /** What to do about it, when something can be done. */
  hint?: string;
  /** @tensorflow/tfjs version. */
  tfjsVersion: string;
}

export interface InitNNOptions {
  /** Force a backend; default: FUSIONKIT_BACKEND, else the fastest that works. */
  backend?: NNBackendName;
  /** Where the one-line report goes (default: stderr); pass null for silence. */
  log?: ((line: string) => void) | null;
}

const HINT = "apt-get install libdnnl-dev libopenblas-dev, then npm rebuild";
const DNNL_HINT = "apt-get install libdnnl-dev, then npm rebuild fusionkit (oneDNN's GEMM is 2-4x faster here)";
let current: NNBackendInfo | undefined;
let reported = false;
let wasmLoaded = false;

async function tryBackend(name: NNBackendName): Promise<boolean> {
  if (name === "fusionkit" && !registerFusionBackend()) return false;
  if (name === "wasm" && !wasmLoaded) {
    await import("@tensorflow/tfjs-backend-wasm");
    const { registerWasmKernels } = await import("./wasm-kernels.js");
    registerWasmKernels();
    wasmLoaded = true;
  }
  try {
    return await tf.setBackend(name);
  } catch {
    return false;
  }
}

/**
 * Selects and initialises the tfjs backend (idempotent unless `backend` changes). Resolves to what is active and why.
 */
export async function initNN(options: InitNNOptions = {}): Promise<NNBackendInfo> {
  const env = process.env.FUSIONKIT_BACKEND?.trim().toLowerCase() || undefined;
  const requested = options.backend ?? env;
  if (current !== undefined && (requested === undefined || requested === current.backend)) return current;
  if (requested !== undefined && !NN_BACKENDS.includes(requested as NNBackendName))
    throw new Error(`FUSIONKIT_BACKEND=${requested}: expected one of ${NN_BACKENDS.join(", ")}`);
  const order: NNBackendName[] =
    requested === undefined ? [...NN_BACKENDS] : [requested as NNBackendName, ...NN_BACKENDS];
  let chosen: NNBackendName | undefined;
  for (const name of order) {
    if (await tryBackend(name)) {
      chosen = name;
      break;
    }
  }
  if (chosen === undefined) throw new Error("fusionkit: no TensorFlow.js backend could be initialised");
  const native = registerFusionBackend();
  const info: NNBackendInfo = { backend: chosen, native, tfjsVersion: tf.version.tfjs };
  const gemm = blas();
  if (gemm !== null) info.gemm = gemm.description;
  if (requested !== undefined) info.requested = requested;
  if (chosen !== FUSION_BACKEND) {
    if (!native) {
      info.reason = `native GEMM unavailable (${blasLoadError() ?? "no binding installed"})`;
      info.hint = HINT;
    } else info.reason = `${chosen} requested`;
  } else if (gemm?.library === "openblas" && process.env.FUSIONKIT_GEMM === undefined) info.hint = DNNL_HINT;
  current = info;
  const log = options.log === undefined ? (line: string) => process.stderr.write(`${line}\n`) : options.log;
  if (!reported && log !== null) {
    reported = true;
    log(describeNNBackend(info));
  }
  return info;
}

/** What initNN chose, or undefined before it ran. */
export function nnBackend(): NNBackendInfo | undefined {
  return current;
}

/** One line for logs, `--version` and `doctor`: e.g. "nn backend: wasm (native BLAS ...; hint: apt-get ...)". */
export function describeNNBackend(info: NNBackendInfo | undefined = current): string {
  if (info === undefined) return "nn backend: not initialised";
  const extra = [info.reason, info.hint === undefined ? undefined : `hint: ${info.hint}`].filter(Boolean).join("; ");
  const gemm = info.backend === FUSION_BACKEND && info.gemm !== undefined ? `gemm ${info.gemm}; ` : "";
  return `nn backend: ${info.backend} (${gemm}tfjs ${info.tfjsVersion}${extra ? `; ${extra}` : ""})`;
}
