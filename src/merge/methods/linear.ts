// Linear averaging / model soups (Wortsman et al., 2022, arXiv:2203.05482); ref: mergekit/merge_methods/linear.py
//
// result = sum_i w_i * x_i, divided by sum_i w_i when `normalize` (the default). Embedding tensors of different
// vocabulary sizes are cropped to their common top-left block. Divergence from mergekit: with `normalize` and
// weights summing to zero mergekit divides by zero (inf / NaN output); fusionkit rejects that with MERGE_INVALID.

import { WASM_MAX_MODELS, wasmFor } from "../../wasm/arena.js";
import { defineMethod, mergeError } from "../define.js";
import { bool, num, resolveParams } from "../params.js";
import { rectifyCommon } from "../rectify.js";
import type { ParamSpec, ResolvedParams } from "../types.js";

const PARAMETERS: ParamSpec[] = [
  { name: "normalize", type: "boolean", default: true, description: "divide by the sum of the weights" },
];
const MODEL_PARAMETERS: ParamSpec[] = [{ name: "weight", type: "number", description: "weight of this model" }];

/** The float32 weights and the divisor (1 without normalize); weights summing to zero with normalize are an error. */
function weightsOf(
  where: { method: string; tensor: string },
  params: ResolvedParams,
  modelParams: readonly ResolvedParams[],
): { w: number[]; divisor: number } {
  const w = modelParams.map((p) => Math.fround(num(p, "weight")));
  let divisor = 1; // dividing by 1 is exact, so "no normalize" shares the loops
  if (bool(params, "normalize")) {
    let sum = 0;
    let sumAbs = 0;
    for (const wi of w) {
      sum = Math.fround(sum + wi);
      sumAbs += Math.abs(wi);
    }
    if (sum === 0 || Math.abs(sum) <= 1e-6 * sumAbs) {
      throw mergeError(
        where,
        `weights [${w.join(", ")}] sum to ${sum} with normalize: true (division by zero); ` +
          "set normalize: false or change the weights",
        "weight",
      );
    }
    divisor = sum;
  }
  return { w, divisor };
}

export const linear = defineMethod({
  name: "linear",
  title: "Linear",
  reference: "Wortsman et al., Model soups, 2022, arXiv:2203.05482",
  mergekitRef: "mergekit/merge_methods/linear.py",
  base: "unused",
  models: { min: 1 },
  random: false,
  elementwise: () => true,
  parameters: PARAMETERS,
  modelParameters: MODEL_PARAMETERS,
  wasmBf16(input) {
    const k = input.models;
    if (k < 1 || k > WASM_MAX_MODELS) return undefined;
    const where = { method: "linear", tensor: input.tensorName };
    const params = resolveParams(PARAMETERS, input.params, where);
    const modelParams = Array.from({ length: k }, (_, i) =>
      resolveParams(MODEL_PARAMETERS, input.modelParams?.[i], { ...where, model: i }),
    );
    const { w, divisor } = weightsOf(where, params, modelParams);
    return (a, inputs, out, n) => {
      const p = a.scratch;
      a.u32(p, k).set(inputs);
      a.f32(p + 4 * k, k).set(w);
      a.k.linear_bf16(p, p + 4 * k, k, divisor, out, n);
    };
  },
  run(ctx) {
    const ts = rectifyCommon(ctx, ctx.models);
    const { w, divisor } = weightsOf(ctx, ctx.params, ctx.modelParams);
    const n = ts[0]!.data.length;
    const out = ctx.out !== undefined && ctx.out.length === n ? ctx.out : new Float32Array(n);
    const xs = ts.map((t) => t.data);
    const wasm = ts.length <= WASM_MAX_MODELS ? wasmFor(out, ...xs) : null;
    if (wasm !== null) {
      // The same float32 steps in SIMD lanes: x0 * w0, + fround(xi * wi) in model order, / divisor (exact for 1).
      const p = wasm.scratch;
      wasm.u32(p, xs.length).set(xs.map((x) => x.byteOffset));
      wasm.f32(p + 4 * xs.length, xs.length).set(w);
      wasm.k.linear(p, p + 4 * xs.length, xs.length, divisor, out.byteOffset, n);
      return { data: out, shape: [...ts[0]!.shape] };
    }
    // float32 products summed in model order, as torch's (weights * stacked).sum(0): every partial sum is rounded
    // to float32, then divided. Two or three models (the common case) take one fused pass; more, one per model.
    if (ts.length === 2) fused2(ts[0]!.data, w[0]!, ts[1]!.data, w[1]!, divisor, out);
    else if (ts.length === 3) fused3(ts[0]!.data, w[0]!, ts[1]!.data, w[1]!, ts[2]!.data, w[2]!, divisor, out);
    else {
      scaleInto(ts[0]!.data, w[0]!, out);
      for (let i = 1; i < ts.length; i++) addScaledInto(ts[i]!.data, w[i]!, out);
      if (divisor !== 1) divideInto(out, divisor);
    }
    return { data: out, shape: [...ts[0]!.shape] };
  },
});

function scaleInto(x: Float32Array, w: number, out: Float32Array): void {
  const n = out.length;
  for (let j = 0; j < n; j++) out[j] = x[j]! * w;
}

function addScaledInto(x: Float32Array, w: number, out: Float32Array): void {
  const n = out.length;
  for (let j = 0; j < n; j++) out[j] = out[j]! + Math.fround(x[j]! * w);
}

function divideInto(out: Float32Array, d: number): void {
  const n = out.length;
  for (let j = 0; j < n; j++) out[j] = out[j]! / d;
}

function fused2(a: Float32Array, wa: number, b: Float32Array, wb: number, d: number, out: Float32Array): void {
  const n = out.length;
  for (let j = 0; j < n; j++) out[j] = Math.fround(Math.fround(a[j]! * wa) + Math.fround(b[j]! * wb)) / d;
}

function fused3(
  a: Float32Array,
  wa: number,
  b: Float32Array,
  wb: number,
  c: Float32Array,
  wc: number,
  d: number,
  out: Float32Array,
): void {
  const n = out.length;
  for (let j = 0; j < n; j++) {
    out[j] = Math.fround(Math.fround(Math.fround(a[j]! * wa) + Math.fround(b[j]! * wb)) + Math.fround(c[j]! * wc)) / d;
  }
}
