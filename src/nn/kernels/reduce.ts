/**
 * Reductions over Float32Arrays: Sum, Mean, Max when the reduced axes are a trailing block (rows of the flattened
 * tensor) or a leading block (columns: bias gradients, summed as onesᵀA by BLAS sgemv); Softmax along the last axis.
 * Other axes, dtypes: tfjs cpu.
 */
import * as tf from "@tensorflow/tfjs";
import { asFusion, FUSION_BACKEND, type FusionBackend } from "../backend.js";
import { type Sgemv, TRANS } from "../blas.js";
import { cpuKernel, sizeOf } from "./util.js";

type Kind = "sum" | "mean" | "max";

interface Split {
  outer: number;
  inner: number;
  /** true: reduce the inner block (rows); false: reduce the outer block (columns). */
  trailing: boolean;
  outShape: number[];
}

/** How the axes split the shape, or null when they are not one leading or trailing block. */
function split(shape: readonly number[], axisAttr: number | number[], keepDims: boolean): Split | null {
  const axes = tf.util.parseAxisParam(axisAttr, [...shape]).sort((x, y) => x - y);
  const rank = shape.length;
  const reduced = new Set(axes);
  const outShape: number[] = [];
  for (let i = 0; i < rank; i++) {
    if (!reduced.has(i)) outShape.push(shape[i]);
    else if (keepDims) outShape.push(1);
  }
  for (let i = 1; i < axes.length; i++) if (axes[i] !== axes[i - 1] + 1) return null;
  if (axes.length === 0) return null;
  const first = axes[0];
  const last = axes[axes.length - 1];
  if (last === rank - 1) {
    return { outer: sizeOf(shape.slice(0, first)), inner: sizeOf(shape.slice(first)), trailing: true, outShape };
  }
  if (first === 0) {
    return { outer: sizeOf(shape.slice(0, last + 1)), inner: sizeOf(shape.slice(last + 1)), trailing: false, outShape };
  }
  return null;
}

function sumRows(x: Float32Array, outer: number, inner: number, out: Float32Array, scale: number): void {
  for (let r = 0; r < outer; r++) {
    let s = 0;
    const base = r * inner;
    for (let j = 0; j < inner; j++) s += x[base + j];
    out[r] = s * scale;
  }
}

function sumCols(x: Float32Array, outer: number, inner: number, out: Float32Array, scale: number): void {
  const acc = new Float64Array(inner);
  for (let r = 0; r < outer; r++) {
    const base = r * inner;
    for (let j = 0; j < inner; j++) acc[j] += x[base + j];
  }
  for (let j = 0; j < inner; j++) out[j] = acc[j] * scale;
}

let ones = new Float32Array(0);

/** Column sums (bias gradients) by sgemv: out = scale * Aᵀ 1. */
function sumColsBlas(
  sgemv: Sgemv,
  x: Float32Array,
  outer: number,
  inner: number,
  out: Float32Array,
  scale: number,
): void {
  if (ones.length < outer) ones = new Float32Array(Math.max(outer, 2 * ones.length)).fill(1);
  sgemv(TRANS, outer, inner, scale, x, inner, ones, 1, 0, out, 1);
}

function maxRows(x: Float32Array, outer: number, inner: number, out: Float32Array): void {
  for (let r = 0; r < outer; r++) {
    const base = r * inner;
    let m = x[base];
    for (let j = 1; j < inner; j++) {
      const v = x[base + j];
      if (v > m || Number.isNaN(v)) m = v;
    }
    out[r] = m;
  }
}

function maxCols(x: Float32Array, outer: number, inner: number, out: Float32Array): void {
  out.set(x.subarray(0, inner));
  for (let r = 1; r < outer; r++) {
    const base = r * inner;
    for (let j = 0; j < inner; j++) {
      const v = x[base + j];
      if (v > out[j] || Number.isNaN(v)) out[j] = v;
    }
  }
}

function reduceKernel(name: string, kind: Kind, sgemv: Sgemv | null): tf.KernelConfig {
  const fallback = cpuKernel(name);
  const kernelFunc: tf.KernelFunc = (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const attrs = args.attrs as { axis?: number | number[]; reductionIndices?: number | number[]; keepDims: boolean };
    const axis = kind === "max" ? attrs.reductionIndices : attrs.axis;
    const s = x.dtype === "float32" && axis !== undefined ? split(x.shape, axis, attrs.keepDims) : null;
    if (s === null || s.outer * s.inner === 0) return fallback(args);
    const be: FusionBackend = asFusion(args.backend);
    const xv = be.f32(x);
    const n = s.trailing ? s.outer : s.inner;
    const out = be.pool.alloc(n);
    const count = s.trailing ? s.inner : s.outer;
    if (kind === "max") {
      if (s.trailing) maxRows(xv, s.outer, s.inner, out);
      else maxCols(xv, s.outer, s.inner, out);
    } else {
      const scale = kind === "mean" ? 1 / count : 1;
      if (s.trailing) sumRows(xv, s.outer, s.inner, out, scale);
      else if (sgemv !== null && s.inner > 1) sumColsBlas(sgemv, xv, s.outer, s.inner, out, scale);
      else sumCols(xv, s.outer, s.inner, out, scale);
    }
    return be.output(s.outShape, out);
  };
  return { kernelName: name, backendName: FUSION_BACKEND, kernelFunc };
}

function softmaxKernel(): tf.KernelConfig {
  const fallback = cpuKernel("Softmax");
  const kernelFunc: tf.KernelFunc = (args) => {
    const { logits } = args.inputs as { logits: tf.TensorInfo };
    const { dim } = args.attrs as { dim: number };
    const rank = logits.shape.length;
    if (logits.dtype !== "float32" || rank === 0 || (dim !== -1 && dim !== rank - 1)) return fallback(args);
    const be = asFusion(args.backend);
    const x = be.f32(logits);
    const inner = logits.shape[rank - 1];
    const out = be.pool.alloc(x.length);
    for (let base = 0; base < x.length; base += inner) {
      let m = x[base];
      for (let j = 1; j < inner; j++) if (x[base + j] > m) m = x[base + j];
      let s = 0;
      for (let j = 0; j < inner; j++) {
        const e = Math.exp(x[base + j] - m);
        out[base + j] = e;
        s += e;
      }
      const inv = 1 / s;
      for (let j = 0; j < inner; j++) out[base + j] *= inv;
    }
    return be.output([...logits.shape], out);
  };
  return { kernelName: "Softmax", backendName: FUSION_BACKEND, kernelFunc };
}

export function reduceKernels(sgemv: Sgemv | null = null): tf.KernelConfig[] {
  return [
    reduceKernel("Sum", "sum", sgemv),
    reduceKernel("Mean", "mean", sgemv),
    reduceKernel("Max", "max", null),
    softmaxKernel(),
  ];
}
