/**
 * Model-level ops written as single JavaScript loops with hand-written gradients (tf.customGrad), for the shapes
 * where tfjs's cpu kernels take their slow generic paths: broadcasting against [M, 1] (LayerNorm), reductions over
 * leading axes (BatchNorm), N-d transposes, concatenation along a middle axis, and the eight-op GELU. They read
 * inputs with dataSync (never keeping the arrays) and give tfjs fresh arrays, so they work on every backend.
 * Gradient closures only hold arrays allocated here.
 */
import * as tf from "@tensorflow/tfjs";
import { FusionBackend } from "../backend.js";
import { recording } from "../layers.js";

type GradFn = Parameters<typeof tf.customGrad>[0];

/** The values of t as a Float32Array the caller may keep (on the fusionkit backend, its buffer leaves the pool). */
export function f32(t: tf.Tensor): Float32Array {
  const v = t.dataSync();
  return v instanceof Float32Array ? v : Float32Array.from(v);
}

function fusionBackend(): FusionBackend | null {
  const b = tf.backend();
  return b instanceof FusionBackend ? b : null;
}

/**
 * The values of t for reading during this call only: on the fusionkit backend the stored array itself, which stays
 * in the pool (a caller that keeps it past the call, or past t's disposal, would see it reused), else f32(t).
 */
export function peek(t: tf.Tensor): Float32Array {
  const be = fusionBackend();
  if (be !== null && t.dtype === "float32") {
    const v = be.f32(t);
    if (v instanceof Float32Array) return v;
  }
  return f32(t);
}

/** An output array of n elements with arbitrary contents, from the fusionkit pool when that backend runs. */
export function outArray(n: number): Float32Array {
  return fusionBackend()?.pool.alloc(n) ?? new Float32Array(n);
}

/** A zero-filled output array of n elements (pooled as outArray). */
export function outZeros(n: number): Float32Array {
  return fusionBackend()?.pool.zeros(n) ?? new Float32Array(n);
}

/** The `save` argument tfjs passes a customGrad function. */
export type SaveFn = (tensors: tf.Tensor[]) => void;

/**
 * Keeps arrays (from outArray) that a gradient will read as tensors through tfjs's `save`: tfjs holds them until the
 * backward pass has run and then disposes them, which returns pooled buffers to the pool; without a tape they are
 * disposed at once. The gradient must read them from its `saved` argument (with peek), never from the closure.
 */
export function saveArrays(save: SaveFn, arrays: Float32Array[], shape: number[]): void {
  save(arrays.map((a) => tf.tensor(a, shape, "float32")));
}

/** out = x permuted by `perm` (tf.transpose semantics), one pass with incremental offsets. */
export function transposeValues(
  x: Float32Array,
  shape: readonly number[],
  perm: readonly number[],
  out: Float32Array = new Float32Array(x.length),
): Float32Array {
  const rank = shape.length;
  if (x.length === 0) return out;
  const inStrides = new Array<number>(rank);
  let s = 1;
  for (let d = rank - 1; d >= 0; d--) {
    inStrides[d] = s;
    s *= shape[d]!;
  }
  const outShape = perm.map((p) => shape[p]!);
  const step = perm.map((p) => inStrides[p]!); // input stride of each output dim
  const last = rank - 1;
  const n = outShape[last]!;
  const st = step[last]!;
  const m = rank > 1 ? outShape[last - 1]! : 1;
  const sm = rank > 1 ? step[last - 1]! : 0;
  const outer = rank > 1 ? last - 2 : -1;
  const idx = new Array<number>(rank).fill(0);
  let base = 0;
  let o = 0;
  const total = x.length;
  while (o < total) {
    for (let i = 0, row = base; i < m; i++, row += sm) {
      let off = row;
      for (let j = 0; j < n; j++) {
        out[o++] = x[off]!;
        off += st;
      }
    }
    // carry over the outer output dims
    let d = outer;
    while (d >= 0) {
      idx[d]!++;
      base += step[d]!;
      if (idx[d]! < outShape[d]!) break;
      base -= step[d]! * outShape[d]!;
      idx[d] = 0;
      d--;
    }
    if (d < 0) break;
  }
  return out;
}

/** tf.transpose, as one JS pass forward and backward. */
export function transpose(x: tf.Tensor, perm: number[]): tf.Tensor {
  const inverse = new Array<number>(perm.length);
  perm.forEach((p, i) => {
    inverse[p] = i;
  });
  const run = tf.customGrad(((a: tf.Tensor) => {
    const outShape = perm.map((p) => a.shape[p]!);
    return {
      value: tf.tensor(transposeValues(peek(a), a.shape, perm, outArray(a.size)), outShape, "float32"),
      gradFunc: (dy: tf.Tensor) =>
        tf.tensor(transposeValues(peek(dy), dy.shape, inverse, outArray(dy.size)), a.shape, "float32"),
    };
  }) as unknown as GradFn);
  return run(x);
}

/** LayerNorm over the last axis of x (any rank), eps inside the square root; weight and bias [C]. */
/**
 * y = LayerNorm rows of xv (C wide) with weight wv and bias bv; also the normalised values and 1/std per row when
 * xhat and rstd are given (what the gradient reads).
 */
function layerNormRows(
  xv: Float32Array,
  wv: Float32Array,
  bv: Float32Array,
  C: number,
  eps: number,
  y: Float32Array,
  xhat?: Float32Array,
  rstd?: Float32Array,
): void {
  const M = xv.length / C;
  for (let r = 0; r < M; r++) {
    const o = r * C;
    let mean = 0;
    for (let c = 0; c < C; c++) mean += xv[o + c]!;
    mean /= C;
    let v = 0;
    for (let c = 0; c < C; c++) {
      const d = xv[o + c]! - mean;
      v += d * d;
    }
    const rs = 1 / Math.sqrt(v / C + eps);
    if (rstd !== undefined) rstd[r] = rs;
    for (let c = 0; c < C; c++) {
      const h = (xv[o + c]! - mean) * rs;
      if (xhat !== undefined) xhat[o + c] = h;
      y[o + c] = h * wv[c]! + bv[c]!;
    }
  }
}

export function layerNorm(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, eps = 1e-5): tf.Tensor {
  const C = x.shape[x.rank - 1]!;
  if (!recording()) {
    const y = outArray(x.size);
    layerNormRows(peek(x), peek(weight), peek(bias), C, eps, y);
    return tf.tensor(y, x.shape, "float32");
  }
  const run = tf.customGrad(((a: tf.Tensor, w: tf.Tensor, b: tf.Tensor, save: SaveFn) => {
    const M = a.size / C;
    const wv = f32(w); // kept for the gradient
    const xhatOut = outArray(a.size);
    const rstd = new Float32Array(M);
    const y = outArray(a.size);
    layerNormRows(peek(a), wv, peek(b), C, eps, y, xhatOut, rstd);
    saveArrays(save, [xhatOut], a.shape);
    return {
      value: tf.tensor(y, a.shape, "float32"),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const xhat = peek(saved[0]!);
        const g = peek(dy);
        const dx = outArray(a.size);
        const dw = new Float32Array(C);
        const db = new Float32Array(C);
        for (let r = 0; r < M; r++) {
          const o = r * C;
          let s1 = 0;
          let s2 = 0;
          for (let c = 0; c < C; c++) {
            const gi = g[o + c]!;
            const h = xhat[o + c]!;
            dw[c]! += gi * h;
            db[c]! += gi;
            const dh = gi * wv[c]!;
            s1 += dh;
            s2 += dh * h;
          }
          s1 /= C;
          s2 /= C;
          const rs = rstd[r]!;
          for (let c = 0; c < C; c++) dx[o + c] = rs * (g[o + c]! * wv[c]! - s1 - xhat[o + c]! * s2);
        }
        return [
          tf.tensor(dx, a.shape, "float32"),
          tf.tensor(dw, w.shape, "float32"),
          tf.tensor(db, b.shape, "float32"),
        ];
      },
    };
  }) as unknown as GradFn);
  return run(x, weight, bias);
}

/**
 * BatchNorm with batch statistics over every axis but the last (channels). Returns the normalised output (with
 * gradients) and the batch mean and biased variance (constants) for the running-statistics update.
 */
export function batchNormTrain(
  x: tf.Tensor,
  weight: tf.Tensor,
  bias: tf.Tensor,
  eps: number,
): { y: tf.Tensor; mean: Float32Array; variance: Float32Array } {
  const C = x.shape[x.rank - 1]!;
  const M = x.size / C;
  const mean = new Float32Array(C);
  const variance = new Float32Array(C);
  const run = tf.customGrad(((a: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => {
    const xv = f32(a);
    const wv = f32(w);
    const bv = f32(b);
    const sum = new Float64Array(C);
    for (let r = 0; r < M; r++) for (let c = 0, o = r * C; c < C; c++) sum[c]! += xv[o + c]!;
    for (let c = 0; c < C; c++) mean[c] = sum[c]! / M;
    const sq = new Float64Array(C);
    for (let r = 0; r < M; r++)
      for (let c = 0, o = r * C; c < C; c++) {
        const d = xv[o + c]! - mean[c]!;
        sq[c]! += d * d;
      }
    const rstd = new Float32Array(C);
    for (let c = 0; c < C; c++) {
      variance[c] = sq[c]! / M;
      rstd[c] = 1 / Math.sqrt(variance[c]! + eps);
    }
    const xhat = new Float32Array(a.size);
    const y = new Float32Array(a.size);
    for (let r = 0; r < M; r++)
      for (let c = 0, o = r * C; c < C; c++) {
        const h = (xv[o + c]! - mean[c]!) * rstd[c]!;
        xhat[o + c] = h;
        y[o + c] = h * wv[c]! + bv[c]!;
      }
    return {
      value: tf.tensor(y, a.shape, "float32"),
      gradFunc: (dy: tf.Tensor) => {
        const g = f32(dy);
        const dw = new Float64Array(C);
        const db = new Float64Array(C);
        for (let r = 0; r < M; r++)
          for (let c = 0, o = r * C; c < C; c++) {
            dw[c]! += g[o + c]! * xhat[o + c]!;
            db[c]! += g[o + c]!;
          }
        // dx = w·rstd·(g - mean(g) - xhat·mean(g·xhat))
        const k = new Float32Array(C);
        const m1 = new Float32Array(C);
        const m2 = new Float32Array(C);
        for (let c = 0; c < C; c++) {
          k[c] = wv[c]! * rstd[c]!;
          m1[c] = db[c]! / M;
          m2[c] = dw[c]! / M;
        }
        const dx = new Float32Array(a.size);
        for (let r = 0; r < M; r++)
          for (let c = 0, o = r * C; c < C; c++) dx[o + c] = k[c]! * (g[o + c]! - m1[c]! - xhat[o + c]! * m2[c]!);
        return [
          tf.tensor(dx, a.shape, "float32"),
          tf.tensor(Float32Array.from(dw), w.shape, "float32"),
          tf.tensor(Float32Array.from(db), b.shape, "float32"),
        ];
      },
    };
  }) as unknown as GradFn);
  return { y: run(x, weight, bias), mean, variance };
}

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

/** y = GELU(xv) (tanh form, the tanh via one exp); also dy/dx when dydx is given (what the gradient reads). */
function geluValues(xv: Float32Array, y: Float32Array, dydx?: Float32Array): void {
  for (let i = 0; i < xv.length; i++) {
    const v = xv[i]!;
    const v2 = v * v;
    const t = 1 - 2 / (Math.exp(2 * GELU_C * v * (1 + GELU_A * v2)) + 1);
    y[i] = 0.5 * v * (1 + t);
    if (dydx !== undefined) dydx[i] = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * GELU_C * (1 + 3 * GELU_A * v2);
  }
}

/** GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))). */
export function gelu(x: tf.Tensor): tf.Tensor {
  if (!recording()) {
    // No tape: the values only, without the derivative the gradient would read.
    const y = outArray(x.size);
    geluValues(peek(x), y);
    return tf.tensor(y, x.shape, "float32");
  }
  const run = tf.customGrad(((a: tf.Tensor, save: SaveFn) => {
    const y = outArray(a.size);
    const dydx = outArray(a.size);
    geluValues(peek(a), y, dydx);
    saveArrays(save, [dydx], a.shape);
    return {
      value: tf.tensor(y, a.shape, "float32"),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const dydx = peek(saved[0]!);
        const g = peek(dy);
        const dx = outArray(a.size);
        for (let i = 0; i < dx.length; i++) dx[i] = g[i]! * dydx[i]!;
        return tf.tensor(dx, a.shape, "float32");
      },
    };
  }) as unknown as GradFn);
  return run(x);
}

/** [1, 1, D] token + [N, P, D] -> [N, 1 + P, D] with the token first in every row. */
export function prependToken(token: tf.Tensor, x: tf.Tensor): tf.Tensor {
  const run = tf.customGrad(((t: tf.Tensor, a: tf.Tensor) => {
    const [N, P, D] = a.shape as [number, number, number];
    const tv = peek(t);
    const av = peek(a);
    const out = outArray(N * (P + 1) * D);
    for (let n = 0; n < N; n++) {
      out.set(tv, n * (P + 1) * D);
      out.set(av.subarray(n * P * D, (n + 1) * P * D), (n * (P + 1) + 1) * D);
    }
    return {
      value: tf.tensor(out, [N, P + 1, D], "float32"),
      gradFunc: (dy: tf.Tensor) => {
        const g = peek(dy);
        const dt = new Float32Array(D);
        const da = outArray(N * P * D);
        for (let n = 0; n < N; n++) {
          const o = n * (P + 1) * D;
          for (let d = 0; d < D; d++) dt[d]! += g[o + d]!;
          da.set(g.subarray(o + D, o + (P + 1) * D), n * P * D);
        }
        return [tf.tensor(dt, t.shape, "float32"), tf.tensor(da, a.shape, "float32")];
      },
    };
  }) as unknown as GradFn);
  return run(token, x);
}

/** Global average pooling: NHWC [N, H, W, C] -> [N, C]. */
export function spatialMean(x: tf.Tensor): tf.Tensor {
  const run = tf.customGrad(((a: tf.Tensor) => {
    const [N, H, W, C] = a.shape as [number, number, number, number];
    const S = H * W;
    const av = f32(a);
    const out = new Float32Array(N * C);
    for (let n = 0; n < N; n++) {
      const o = n * C;
      for (let s = 0, i = n * S * C; s < S; s++, i += C) for (let c = 0; c < C; c++) out[o + c]! += av[i + c]!;
      for (let c = 0; c < C; c++) out[o + c]! /= S;
    }
    return {
      value: tf.tensor(out, [N, C], "float32"),
      gradFunc: (dy: tf.Tensor) => {
        const g = f32(dy);
        const dx = new Float32Array(a.size);
        for (let n = 0; n < N; n++)
          for (let s = 0, i = n * S * C; s < S; s++, i += C) for (let c = 0; c < C; c++) dx[i + c] = g[n * C + c]! / S;
        return tf.tensor(dx, a.shape, "float32");
      },
    };
  }) as unknown as GradFn);
  return run(x);
}

/** y = softmax(scale · x) of each C-wide row of x (y may be x). */
export function softmaxRows(x: Float32Array, y: Float32Array, C: number, scale: number): void {
  const M = x.length / C;
  for (let r = 0; r < M; r++) {
    const o = r * C;
    let mx = -Infinity;
    for (let c = 0; c < C; c++) mx = Math.max(mx, x[o + c]!);
    let sum = 0;
    for (let c = 0; c < C; c++) {
      const e = Math.exp(scale * (x[o + c]! - mx));
      y[o + c] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let c = 0; c < C; c++) y[o + c]! *= inv;
  }
}

/** dx = the gradient of softmax(scale · x) from the probabilities p and their gradient g, per C-wide row (dx may be g). */
export function softmaxGradRows(p: Float32Array, g: Float32Array, dx: Float32Array, C: number, scale: number): void {
  const M = p.length / C;
  for (let r = 0; r < M; r++) {
    const o = r * C;
    let dot = 0;
    for (let c = 0; c < C; c++) dot += g[o + c]! * p[o + c]!;
    for (let c = 0; c < C; c++) dx[o + c] = scale * p[o + c]! * (g[o + c]! - dot);
  }
}

/** softmax(scale · x) over the last axis. */
export function scaledSoftmax(x: tf.Tensor, scale: number): tf.Tensor {
  const run = tf.customGrad(((a: tf.Tensor, save: SaveFn) => {
    const C = a.shape[a.rank - 1]!;
    const y = outArray(a.size);
    softmaxRows(peek(a), y, C, scale);
    const value = tf.tensor(y, a.shape, "float32");
    save([value]); // the probabilities, for the gradient
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const dx = outArray(a.size);
        softmaxGradRows(peek(saved[0]!), peek(dy), dx, C, scale);
        return tf.tensor(dx, a.shape, "float32");
      },
    };
  }) as unknown as GradFn);
  return run(x);
}

/** x[:, 0, :] of [N, T, D] as [N, D]. */
export function firstToken(x: tf.Tensor): tf.Tensor {
  const run = tf.customGrad(((a: tf.Tensor) => {
    const [N, T, D] = a.shape as [number, number, number];
    const av = peek(a);
    const out = outArray(N * D);
    for (let n = 0; n < N; n++) out.set(av.subarray(n * T * D, n * T * D + D), n * D);
    return {
      value: tf.tensor(out, [N, D], "float32"),
      gradFunc: (dy: tf.Tensor) => {
        const g = peek(dy);
        const dx = outZeros(a.size);
        for (let n = 0; n < N; n++) dx.set(g.subarray(n * D, (n + 1) * D), n * T * D);
        return tf.tensor(dx, a.shape, "float32");
      },
    };
  }) as unknown as GradFn);
  return run(x);
}

/**
 * values [M, K] (a constant: input data) · W[O, K]ᵀ + b, whose gradient covers W and b only (no dX product).
 */
export function constLinear(values: Float32Array, M: number, K: number, w: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const run = tf.customGrad(((wt: tf.Tensor, bt: tf.Tensor) => {
    const xs = tf.tensor(values, [M, K], "float32");
    const y = tf.fused.matMul({ a: xs, b: wt, transposeB: true, bias: bt });
    xs.dispose();
    return {
      value: y,
      gradFunc: (dy: tf.Tensor) => {
        const x2 = tf.tensor(values, [M, K], "float32");
        const dw = tf.matMul(dy, x2, true, false);
        x2.dispose();
        return [dw, tf.sum(dy, 0)];
      },
    };
  }) as unknown as GradFn);
  return run(w, b);
}

/** Embedding lookup: rows `ids` of weight [V, D] -> [ids.length, D]; the gradient scatter-adds into [V, D]. */
export function embedding(weight: tf.Tensor, ids: Int32Array): tf.Tensor {
  const run = tf.customGrad(((w: tf.Tensor) => {
    const [V, D] = w.shape as [number, number];
    const wv = f32(w);
    const out = new Float32Array(ids.length * D);
    for (let i = 0; i < ids.length; i++) out.set(wv.subarray(ids[i]! * D, (ids[i]! + 1) * D), i * D);
    return {
      value: tf.tensor(out, [ids.length, D], "float32"),
      gradFunc: (dy: tf.Tensor) => {
        const g = f32(dy);
        const dw = new Float32Array(V * D);
        for (let i = 0; i < ids.length; i++) {
          const o = ids[i]! * D;
          for (let d = 0; d < D; d++) dw[o + d]! += g[i * D + d]!;
        }
        return tf.tensor(dw, [V, D], "float32");
      },
    };
  }) as unknown as GradFn);
  return run(weight);
}
