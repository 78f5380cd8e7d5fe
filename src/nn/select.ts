/**
 * Backend selection: `fusionkit` (native BLAS) when the binding loads, else `wasm` (with the kernels in
 * wasm-kernels.ts that make it train), else tfjs's `cpu`. `FUSIONKIT_BACKEND` (or the `backend` option) overrides;
 * the choice is reported once.
 */
import * as tf from "@tensorflow/tfjs";
import { FUSION_BACKEND } from "./backend.js";
import { blasLoadError } from "./blas.js";
import { registerFusionBackend } from "./register.js";

export type NNBackendName = "fusionkit" | "wasm" | "cpu";
export const NN_BACKENDS: readonly NNBackendName[] = ["fusionkit", "wasm", "cpu"];

export interface NNBackendInfo {
  /** The active tfjs backend. */
  backend: NNBackendName;
  /** Whether the native BLAS binding (nblas) loaded. */
  native: boolean;
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

const HINT = "apt-get install libopenblas-dev, then npm rebuild nblas";
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
  if (requested !== undefined) info.requested = requested;
  if (chosen !== FUSION_BACKEND) {
    if (!native) {
      info.reason = `native BLAS binding unavailable (${blasLoadError() ?? "nblas not installed"})`;
      info.hint = HINT;
    } else info.reason = `${chosen} requested`;
  }
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
  return `nn backend: ${info.backend} (tfjs ${info.tfjsVersion}${extra ? `; ${extra}` : ""})`;
}
