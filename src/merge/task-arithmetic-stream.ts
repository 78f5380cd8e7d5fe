// Streaming form of the task-arithmetic family (task-arithmetic-core.ts) for magnitude (TIES) and random (DARE)
// sparsification: the whole-tensor statistics (each model's top-k threshold, the L1 rescale sums) are gathered in
// passes over chunks, then every output chunk is combined exactly as the whole-tensor merge combines it. Only a
// few chunk-sized buffers live at once, whatever the tensor's size; results are bit-identical.
//
//   pass 0: high-bits histogram of |delta| (magnitude models); L1 sums under the drawn mask (random, rescale)
//   pass 1: low-bits histogram inside the threshold bin -> threshold key and how many ties to keep
//   pass 2: L1 sums under the top-k mask (magnitude, rescale)

import { bernoulliFill, type Key64, MagnitudeSelect, topKMaskChunk } from "../tensor/kernels.js";
import { WASM_MAX_MODELS, wasmArena } from "../wasm/arena.js";
import { bool, num, resolveParams } from "./params.js";
import { maskStreamKey } from "./random.js";
import {
  addL1Sums,
  type L1Sums,
  l1After,
  l1Before,
  magnitudeKeepCount,
  newL1Sums,
  rescaleFromNorms,
} from "./sparsify.js";
import {
  combineConsensus,
  combineSum,
  globalParams,
  modelParams,
  type TaskArithmeticOptions,
} from "./task-arithmetic-core.js";
import { type WasmModel, wasmStreamBytes, wasmTaskArithmeticStream } from "./task-arithmetic-wasm.js";
import type { StreamChunk, StreamInput, StreamingMerge } from "./types.js";

type ModelState =
  | { kind: "dense" }
  | { kind: "magnitude"; select: MagnitudeSelect; key: number; take: number; tie: { left: number }; sums: L1Sums }
  | { kind: "random"; p: number; key: Key64; sums: L1Sums };

/** The stream's view of the parameters: each model dense, top-k (magnitude) or Bernoulli-masked (random). */
interface StreamPlan {
  params: ReturnType<typeof resolveParams>;
  mps: ReturnType<typeof resolveParams>[];
  models: WasmModel[];
}

/** What a stream over `input` would do with each model, or undefined when this family does not stream it. */
function planStream(o: TaskArithmeticOptions, input: StreamInput): StreamPlan | undefined {
  if (o.sparsification !== null && o.sparsification !== "magnitude" && o.sparsification !== "random") return undefined;
  if (!input.hasBase || input.models === 0) return undefined;
  const where = { method: o.name, tensor: input.tensorName };
  const params = resolveParams(globalParams(o), input.params, where);
  const mps = Array.from({ length: input.models }, (_, i) =>
    resolveParams(modelParams(o), input.modelParams?.[i], { ...where, model: i }),
  );
  const n = input.numel;
  const seed = input.seed ?? 0;
  const models = mps.map((p, i): WasmModel => {
    const density = num(p, "density");
    if (o.sparsification === null || !(density < 1)) return { kind: "dense" };
    if (o.sparsification === "random") {
      return { kind: "random", p: Math.fround(density), key: maskStreamKey(seed, input.tensorName, i) };
    }
    const k = magnitudeKeepCount(density, n, { where, modelIndex: i });
    // keeping everything is dense: the L1 ratio is then exactly 1
    return k >= n ? { kind: "dense" } : { kind: "magnitude", take: k };
  });
  return { params, mps, models };
}

/**
 * An upper bound of the bytes a stream over `input` holds beyond the engine's chunk buffers (on the wasm kernels,
 * which the engine uses where it can; the plain form holds less), or undefined when this family does not stream it.
 */
export function streamTaskArithmeticBytes(
  o: TaskArithmeticOptions,
  input: StreamInput,
  chunk: number,
): number | undefined {
  const plan = planStream(o, input);
  if (plan === undefined) return undefined;
  return wasmStreamBytes(
    plan.models.map((m) => m.kind),
    input.numel,
    chunk,
    bool(plan.params, "rescale"),
  );
}

export function streamTaskArithmetic(o: TaskArithmeticOptions, input: StreamInput): StreamingMerge | undefined {
  const plan = planStream(o, input);
  if (plan === undefined) return undefined;
  const { params, mps } = plan;
  const n = input.numel;
  const w = mps.map((p) => Math.fround(num(p, "weight")));
  const rescale = bool(params, "rescale");
  const normalize = bool(params, "normalize");
  const lambda = Math.fround(num(params, "lambda"));
  const models = plan.models.map((m): ModelState => {
    if (m.kind === "random") return { ...m, sums: newL1Sums() };
    if (m.kind === "magnitude") {
      return {
        kind: "magnitude",
        select: new MagnitudeSelect(n - m.take),
        key: 0,
        take: m.take,
        tie: { left: 0 },
        sums: newL1Sums(),
      };
    }
    return m;
  });
  const arena =
    input.wasmChunk !== undefined && o.consensus !== "count" && models.length <= WASM_MAX_MODELS ? wasmArena() : null;
  if (arena !== null) {
    return wasmTaskArithmeticStream(arena, {
      models: plan.models,
      n,
      w,
      rescale,
      normalize,
      lambda,
      consensus: o.consensus !== null,
      maxChunk: input.wasmChunk!,
    });
  }
  const anyMagnitude = models.some((m) => m.kind === "magnitude");
  const anyRandom = models.some((m) => m.kind === "random");
  const passes = anyMagnitude ? (rescale ? 3 : 2) : rescale && anyRandom ? 1 : 0;
  const scales = models.map(() => 1);
  const keeps: (Uint8Array | null)[] = models.map(() => null);
  let delta = new Float32Array(0);
  let masks = models.map(() => new Uint8Array(0));

  const deltaOf = (x: Float32Array, b: Float32Array): Float32Array => {
    if (delta.length < b.length) delta = new Float32Array(b.length);
    const d = delta.subarray(0, b.length);
    for (let j = 0; j < b.length; j++) d[j] = x[j]! - b[j]!;
    return d;
  };
  const maskOf = (i: number, len: number): Uint8Array => {
    if (masks[i]!.length < len) masks = masks.map((m, j) => (j === i ? new Uint8Array(len) : m));
    return masks[i]!.subarray(0, len);
  };
  const resetTies = () => {
    for (const m of models) {
      if (m.kind === "magnitude") m.tie.left = m.take;
    }
  };

  return {
    passes,
    observe(pass: number, chunk: StreamChunk): void {
      const b = chunk.base!;
      models.forEach((m, i) => {
        if (m.kind === "dense") return;
        if (m.kind === "random") {
          if (pass === 0 && rescale) {
            const d = deltaOf(chunk.models[i]!, b);
            addL1Sums(d, bernoulliFill(m.key, m.p, maskOf(i, d.length), chunk.start), m.sums, chunk.start);
          }
          return;
        }
        const d = deltaOf(chunk.models[i]!, b);
        if (pass === 0) m.select.countHigh(d);
        else if (pass === 1) m.select.countLow(d);
        else addL1Sums(d, topKMaskChunk(d, m.key, m.tie, maskOf(i, d.length)), m.sums, chunk.start);
      });
    },
    endPass(pass: number): void {
      for (const m of models) {
        if (m.kind !== "magnitude") continue;
        if (pass === 0) m.select.settleHigh();
        if (pass === 1) {
          const t = m.select.result();
          m.key = t.key;
          m.take = m.take - (n - t.below - t.equal); // ties at the threshold kept, in index order
        }
      }
      resetTies();
      if (pass === passes - 1 && rescale) {
        models.forEach((m, i) => {
          if (m.kind !== "dense") scales[i] = rescaleFromNorms(l1Before(m.sums), l1After(m.sums));
        });
      }
    },
    emit(chunk: StreamChunk, out: Float32Array): void {
      const b = chunk.base!;
      models.forEach((m, i) => {
        if (m.kind === "dense") keeps[i] = null;
        else if (m.kind === "random") keeps[i] = bernoulliFill(m.key, m.p, maskOf(i, b.length), chunk.start);
        else keeps[i] = topKMaskChunk(deltaOf(chunk.models[i]!, b), m.key, m.tie, maskOf(i, b.length));
      });
      if (o.consensus !== null) {
        combineConsensus(b, chunk.models, keeps, scales, w, o.consensus === "count", normalize, lambda, out);
      } else combineSum(b, chunk.models, keeps, scales, w, normalize, lambda, out);
    },
  };
}
