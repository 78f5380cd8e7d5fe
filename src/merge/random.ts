// Mask sources for the random sparsifiers: reproducible seeded draws, and replay of given masks.
//
// A seeded mask is a pure function of (seed, tensor name, model index, element index): element i of model m's
// mask for tensor T uses uniform number i of the stream keyed by hash(seed, T, m). Nothing depends on the order in
// which tensors or models are processed, or on how many threads run.

import { bernoulliFill, hashString32, type Key64, mix32 } from "../tensor/kernels.js";
import type { MaskSource } from "./types.js";

/** The 64-bit stream key of (seed, tensor name, model index). */
export function maskStreamKey(seed: number, tensorName: string, modelIndex: number): Key64 {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 4294967296) >>> 0;
  const m = mix32((modelIndex + 0x632be5ab) >>> 0);
  const k0 = mix32(hashString32(tensorName, lo) ^ m ^ hi);
  const k1 = mix32((hashString32(tensorName, (hi ^ 0x5bd1e995) >>> 0) + mix32((lo ^ m ^ 0x27d4eb2f) >>> 0)) >>> 0);
  return { k0, k1 };
}

/** Reproducible Bernoulli masks keyed by (seed, tensor name, model index). */
export function seededMasks(seed: number, tensorName: string): MaskSource {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  return {
    fill(modelIndex, probs, out) {
      bernoulliFill(maskStreamKey(seed, tensorName, modelIndex), probs, out);
    },
  };
}

/**
 * Replays given 0/1 masks (one per model, in model order), ignoring the probabilities: reproduces a recorded draw
 * exactly (used by the conformance tests with mergekit's masks).
 */
export function replayMasks(masks: readonly (Float32Array | Uint8Array)[]): MaskSource {
  return {
    fill(modelIndex, _probs, out) {
      const m = masks[modelIndex];
      if (m === undefined) throw new RangeError(`replayMasks: no mask for model ${modelIndex}`);
      if (m.length !== out.length) {
        throw new RangeError(`replayMasks: mask ${modelIndex} has ${m.length} elements, need ${out.length}`);
      }
      for (let i = 0; i < out.length; i++) {
        const v = m[i]!;
        if (v !== 0 && v !== 1) throw new RangeError(`replayMasks: mask ${modelIndex} holds ${v} at ${i}`);
        out[i] = v;
      }
    },
  };
}
