// The optional native merge kernels (native/merge-kernels, built at install; AVX-512): stand-ins for the wasm
// kernels of the TIES and DARE hot paths over raw bf16, the same bits sixteen elements a step. They take the arena's memory
// and the wasm kernels' offsets, so the arena swaps them in where they load and this CPU runs them.
// FUSIONKIT_NATIVE_KERNELS=0 keeps the wasm kernels.

import { createRequire } from "node:module";
import type { KernelExports } from "./arena.js";

/** A wasm kernel's signature with the arena's memory first. */
type WithMemory<F> = F extends (...args: infer A) => infer R ? (memory: ArrayBuffer, ...args: A) => R : never;

/** The native kernels: each the wasm kernel of that name with the arena's memory first (the band pass needs no pack table). */
export interface NativeKernels {
  ta_consensus3_topk_bf16_out: WithMemory<KernelExports["ta_consensus3_topk_bf16_out"]>;
  delta_band3_bf16(memory: ArrayBuffer, x0: number, x1: number, x2: number, b: number, n: number, recs: number): void;
  /** The masked combine (keep-masks of bytes 0 / 1, as the Bernoulli and top-k mask kernels write them). */
  ta_consensus3_bf16_out: WithMemory<KernelExports["ta_consensus3_bf16_out"]>;
  l1_sums3_bf16: WithMemory<KernelExports["l1_sums3_bf16"]>;
  bernoulli: WithMemory<KernelExports["bernoulli"]>;
}

/** The kernels the addon provides (each checked at load). */
const NAMES = [
  "ta_consensus3_topk_bf16_out",
  "delta_band3_bf16",
  "ta_consensus3_bf16_out",
  "l1_sums3_bf16",
  "bernoulli",
] as const;

/** The addon's build output, from src/wasm and dist/wasm alike. */
const ADDON = "../../native/merge-kernels/build/Release/fusionkit_merge_kernels.node";

let loaded: NativeKernels | null | undefined;
let why = "";

/** The native kernels, or null (not built, another CPU, or FUSIONKIT_NATIVE_KERNELS=0; see nativeKernelsStatus). */
export function nativeKernels(): NativeKernels | null {
  if (process.env.FUSIONKIT_NATIVE_KERNELS === "0") {
    why = "off (FUSIONKIT_NATIVE_KERNELS=0)";
    return null;
  }
  if (loaded !== undefined) return loaded;
  try {
    const mod = createRequire(import.meta.url)(ADDON) as Partial<NativeKernels> & { supported?: boolean };
    if (mod.supported !== true) {
      why = "not used: this CPU lacks AVX-512";
      loaded = null;
    } else if (NAMES.some((name) => typeof mod[name] !== "function")) {
      why = "not used: the addon lacks its kernels";
      loaded = null;
    } else loaded = mod as NativeKernels;
  } catch {
    why = "not built (a C compiler at install builds it: npm rebuild fusionkit)";
    loaded = null;
  }
  return loaded;
}

/** One line for `fusionkit doctor`. */
export function nativeKernelsStatus(): string {
  return nativeKernels() !== null ? "AVX-512 (native addon)" : why;
}
