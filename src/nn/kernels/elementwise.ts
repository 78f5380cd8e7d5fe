/**
 * Elementwise kernels over Float32Arrays: Add, Sub, Multiply, RealDiv, Maximum, Minimum, Pow, SquaredDifference for
 * same-shape, scalar and trailing-axis broadcasts (b's shape a suffix of a's, or the reverse); Square, Sqrt, Rsqrt,
 * Exp, Log, Neg, Abs, Relu, Relu6, Step (Relu's gradient), Sigmoid, Tanh; AddN. Each op gets its own generated loop
 * (`new Function` per op), because one per-element callback shared by all ops turns V8 megamorphic (3-5x slower).
 * Other broadcasts and dtypes go to the tfjs cpu kernel. Outputs come from the backend's buffer pool.
 */
import type * as tf from "@tensorflow/tfjs";
import { asFusion, FUSION_BACKEND } from "../backend.js";
import { allFloat32, cpuKernel, sameShape, sizeOf } from "./util.js";

/** out = a OP b: same size (na === nb), scalar b (nb === 1), scalar a (na === 1), b repeating (na % nb === 0) or a repeating. */
type BinaryLoop = (a: Float32Array, b: Float32Array, out: Float32Array) => void;
type UnaryLoop = (x: Float32Array, out: Float32Array, alpha: number) => void;

function binaryLoop(expr: string): BinaryLoop {
  const body = `
    const na = a.length, nb = b.length, n = out.length;
    if (na === nb) { for (let i = 0; i < n; i++) { const x = a[i], y = b[i]; out[i] = ${expr}; } return; }
    if (nb === 1) { const y = b[0]; for (let i = 0; i < n; i++) { const x = a[i]; out[i] = ${expr}; } return; }
    if (na === 1) { const x = a[0]; for (let i = 0; i < n; i++) { const y = b[i]; out[i] = ${expr}; } return; }
    if (nb < na) {
      for (let r = 0; r < n; r += nb) for (let j = 0; j < nb; j++) { const x = a[r + j], y = b[j]; out[r + j] = ${expr}; }
      return;
    }
    for (let r = 0; r < n; r += na) for (let j = 0; j < na; j++) { const x = a[j], y = b[r + j]; out[r + j] = ${expr}; }`;
  return new Function("a", "b", "out", body) as BinaryLoop;
}

function unaryLoop(expr: string): UnaryLoop {
  return new Function(
    "xs",
    "out",
    "alpha",
    `for (let i = 0, n = out.length; i < n; i++) { const x = xs[i]; out[i] = ${expr}; }`,
  ) as UnaryLoop;
}

export const BINARY: Record<string, string> = {
  Add: "x + y",
  Sub: "x - y",
  Multiply: "x * y",
  RealDiv: "x / y",
  Maximum: "Math.max(x, y)",
  Minimum: "Math.min(x, y)",
  Pow: "Math.pow(x, y)",
  SquaredDifference: "(x - y) * (x - y)",
};

export const UNARY: Record<string, string> = {
  Square: "x * x",
  Sqrt: "Math.sqrt(x)",
  Rsqrt: "1 / Math.sqrt(x)",
  Exp: "Math.exp(x)",
  Log: "Math.log(x)",
  Neg: "-x",
  Abs: "Math.abs(x)",
  // branch-free where the sign is random (a mispredicted branch per element costs 4x); -Infinity and NaN stay exact
  Relu: "x === -Infinity ? 0 : x * (x > 0)",
  Relu6: "Math.min(Math.max(x, 0), 6)",
  Step: "x !== x ? x : (x > 0) + (x <= 0) * alpha",
  Sigmoid: "1 / (1 + Math.exp(-x))",
  Tanh: "Math.tanh(x)",
};

/** The broadcast output shape when the fast loop covers a, b; null otherwise. */
function fastBroadcast(a: readonly number[], b: readonly number[]): number[] | null {
  if (sameShape(a, b)) return [...a];
  const na = sizeOf(a);
  const nb = sizeOf(b);
  if (nb === 1 && b.length <= a.length) return [...a];
  if (na === 1 && a.length <= b.length) return [...b];
  // trailing-axis: the shorter operand's shape, stripped of leading 1s, is a suffix of the longer one
  const [long, short] = na >= nb ? [a, b] : [b, a];
  let s = 0;
  while (s < short.length && short[s] === 1) s++;
  const core = short.slice(s);
  if (short.length > long.length || core.length === 0) return null;
  const off = long.length - core.length;
  for (let i = 0; i < core.length; i++) if (long[off + i] !== core[i]) return null;
  return [...long];
}

export function elementwiseKernels(): tf.KernelConfig[] {
  const configs: tf.KernelConfig[] = [];
  for (const [name, expr] of Object.entries(BINARY)) {
    const loop = binaryLoop(expr);
    const fallback = cpuKernel(name);
    const kernelFunc: tf.KernelFunc = (args) => {
      const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
      const shape = allFloat32(a, b) ? fastBroadcast(a.shape, b.shape) : null;
      if (shape === null) return fallback(args);
      const be = asFusion(args.backend);
      const out = be.pool.alloc(sizeOf(shape));
      if (out.length > 0) loop(be.f32(a), be.f32(b), out);
      return be.output(shape, out);
    };
    configs.push({ kernelName: name, backendName: FUSION_BACKEND, kernelFunc });
  }
  for (const [name, expr] of Object.entries(UNARY)) {
    const loop = unaryLoop(expr);
    const fallback = cpuKernel(name);
    const kernelFunc: tf.KernelFunc = (args) => {
      const { x } = args.inputs as { x: tf.TensorInfo };
      if (x.dtype !== "float32") return fallback(args);
      const be = asFusion(args.backend);
      const out = be.pool.alloc(sizeOf(x.shape));
      const alpha = (args.attrs as { alpha?: number } | undefined)?.alpha ?? 0;
      loop(be.f32(x), out, alpha);
      return be.output([...x.shape], out);
    };
    configs.push({ kernelName: name, backendName: FUSION_BACKEND, kernelFunc });
  }
  const cpuAddN = cpuKernel("AddN");
  const addN: tf.KernelFunc = (args) => {
    const xs = Object.values(args.inputs) as tf.TensorInfo[];
    if (xs.length === 0 || !allFloat32(...xs) || !xs.every((t) => sameShape(t.shape, xs[0].shape)))
      return cpuAddN(args);
    const be = asFusion(args.backend);
    const out = be.pool.alloc(sizeOf(xs[0].shape));
    out.set(be.f32(xs[0]));
    for (let t = 1; t < xs.length; t++) {
      const v = be.f32(xs[t]);
      for (let i = 0; i < out.length; i++) out[i] += v[i];
    }
    return be.output([...xs[0].shape], out);
  };
  configs.push({ kernelName: "AddN", backendName: FUSION_BACKEND, kernelFunc: addN });
  return configs;
}
