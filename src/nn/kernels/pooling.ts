/**
 * Max pooling over NHWC Float32Arrays: `MaxPool` and `MaxPoolGrad` (the gradient goes to the first maximum of each
 * window, as in tfjs-backend-cpu). Windows, strides and padding come from tfjs's computePool2DInfo; the channel loop is
 * innermost so every access is contiguous. Other dtypes go to the cpu kernels.
 */
import * as tf from "@tensorflow/tfjs";
import { asFusion, FUSION_BACKEND } from "../backend.js";
import { cpuKernel } from "./util.js";

interface PoolAttrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: "same" | "valid" | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: "floor" | "round" | "ceil";
}

type Info = tf.backend_util.Conv2DInfo;

function poolInfo(shape: number[], a: PoolAttrs): Info {
  return tf.backend_util.computePool2DInfo(
    shape as [number, number, number, number],
    a.filterSize,
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
  );
}

/**
 * For every output pixel and channel, the window's first maximum into `out` and, when `pos` is given, its flat input
 * index (-1 for a window that lies entirely in the padding). The updates are arithmetic, not branches: which element
 * wins is random, and a mispredicted branch per element costs several times the work.
 */
export function maxPositions(x: Float32Array, c: Info, pos: Int32Array | null, out: Float32Array): void {
  const { inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = c;
  const { strideHeight: sh, strideWidth: sw, filterHeight: FH, filterWidth: FW } = c;
  const top = c.padInfo.top;
  const left = c.padInfo.left;
  let o = 0;
  for (let b = 0; b < c.batchSize; b++) {
    const xb = b * H * W * C;
    for (let oh = 0; oh < OH; oh++) {
      const h0 = oh * sh - top;
      const hs = Math.max(0, h0);
      const he = Math.min(H, h0 + FH);
      for (let ow = 0; ow < OW; ow++) {
        const w0 = ow * sw - left;
        const ws = Math.max(0, w0);
        const we = Math.min(W, w0 + FW);
        if (hs >= he || ws >= we) {
          out.fill(Number.NEGATIVE_INFINITY, o, o + C);
          if (pos !== null) pos.fill(-1, o, o + C);
          o += C;
          continue;
        }
        const first = xb + (hs * W + ws) * C;
        for (let ch = 0; ch < C; ch++) out[o + ch] = x[first + ch];
        if (pos !== null) for (let ch = 0; ch < C; ch++) pos[o + ch] = first + ch;
        for (let ih = hs; ih < he; ih++) {
          for (let iw = ih === hs ? ws + 1 : ws; iw < we; iw++) {
            const xi = xb + (ih * W + iw) * C;
            if (pos === null) {
              for (let ch = 0; ch < C; ch++) {
                const v = x[xi + ch];
                const m = out[o + ch];
                out[o + ch] = m + (v - m) * Number(v > m);
              }
            } else {
              for (let ch = 0; ch < C; ch++) {
                const v = x[xi + ch];
                const m = out[o + ch];
                const win = Number(v > m);
                out[o + ch] = m + (v - m) * win;
                pos[o + ch] += (xi + ch - pos[o + ch]) * win;
              }
            }
          }
        }
        o += C;
      }
    }
  }
}

/** True for a 2x2 window with stride 2 whose windows all lie inside the input (valid, or same on even sizes). */
function isPair(c: Info): boolean {
  return (
    c.filterHeight === 2 &&
    c.filterWidth === 2 &&
    c.strideHeight === 2 &&
    c.strideWidth === 2 &&
    c.padInfo.top === 0 &&
    c.padInfo.left === 0 &&
    2 * c.outHeight <= c.inHeight &&
    2 * c.outWidth <= c.inWidth
  );
}

/** The first maximum of four values (and its index) by comparisons (the rare inputs where the arithmetic form gives NaN). */
function max4(a: number, b: number, c: number, d: number): number {
  let m = a;
  if (b > m) m = b;
  if (c > m) m = c;
  if (d > m) m = d;
  return m;
}

function argmax4(a: number, b: number, c: number, d: number): number {
  let m = a;
  let k = 0;
  if (b > m) [m, k] = [b, 1];
  if (c > m) [m, k] = [c, 2];
  if (d > m) k = 3;
  return k;
}

/**
 * 2x2 stride-2 max pooling: the maximum of each window into `out` and, when `which` is given, which of its four
 * elements (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) is the first maximum. Branch-free like
 * maxPositions (Math.max and ternaries measured 3-5x slower here); where the arithmetic meets infinities or NaN and
 * yields NaN, the value is recomputed by comparisons.
 */
export function maxPair(x: Float32Array, c: Info, which: Uint8Array | null, out: Float32Array): void {
  const { inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = c;
  const rowStride = W * C;
  let o = 0;
  for (let b = 0; b < c.batchSize; b++) {
    for (let oh = 0; oh < OH; oh++) {
      const r0 = (b * H + 2 * oh) * rowStride;
      for (let ow = 0; ow < OW; ow++) {
        const p = r0 + 2 * ow * C;
        const q = p + rowStride;
        if (which === null) {
          for (let ch = 0; ch < C; ch++) {
            const v0 = x[p + ch];
            const v1 = x[p + C + ch];
            const v2 = x[q + ch];
            const v3 = x[q + C + ch];
            let m = v0 + (v1 - v0) * Number(v1 > v0);
            m += (v2 - m) * Number(v2 > m);
            m += (v3 - m) * Number(v3 > m);
            out[o + ch] = Number.isNaN(m) ? max4(v0, v1, v2, v3) : m;
          }
        } else {
          for (let ch = 0; ch < C; ch++) {
            const v0 = x[p + ch];
            const v1 = x[p + C + ch];
            const v2 = x[q + ch];
            const v3 = x[q + C + ch];
            let w = Number(v1 > v0);
            let m = v0 + (v1 - v0) * w;
            let k = w;
            w = Number(v2 > m);
            m += (v2 - m) * w;
            k += (2 - k) * w;
            w = Number(v3 > m);
            m += (v3 - m) * w;
            k += (3 - k) * w;
            if (Number.isNaN(m)) {
              m = max4(v0, v1, v2, v3);
              k = argmax4(v0, v1, v2, v3);
            }
            out[o + ch] = m;
            which[o + ch] = k;
          }
        }
        o += C;
      }
    }
  }
}

/** dx of 2x2 stride-2 max pooling: every input element written once (dy at the window's winner, 0 elsewhere). */
function maxPairGrad(dy: Float32Array, which: Uint8Array, c: Info, dx: Float32Array): void {
  const { inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = c;
  const rowStride = W * C;
  if (2 * OH < H || 2 * OW < W) dx.fill(0); // rows or columns no window covers
  let o = 0;
  for (let b = 0; b < c.batchSize; b++) {
    for (let oh = 0; oh < OH; oh++) {
      const r0 = (b * H + 2 * oh) * rowStride;
      for (let ow = 0; ow < OW; ow++) {
        const p = r0 + 2 * ow * C;
        const q = p + rowStride;
        for (let ch = 0; ch < C; ch++) {
          const g = dy[o + ch];
          const k = which[o + ch];
          dx[p + ch] = g * Number(k === 0);
          dx[p + C + ch] = g * Number(k === 1);
          dx[q + ch] = g * Number(k === 2);
          dx[q + C + ch] = g * Number(k === 3);
        }
        o += C;
      }
    }
  }
}

/**
 * Argmax positions computed by a forward MaxPool while a gradient tape records, keyed by the output's dataId, so that
 * MaxPoolGrad need not search every window again. Entries die with the output tensor (WeakMap) or on first use.
 */
interface Positions {
  /** flat input index per output (general windows) */
  pos: Int32Array | null;
  /** winner within the 2x2 window per output (isPair) */
  which: Uint8Array | null;
  storage: Float32Array;
}

const positionsByOutput = new WeakMap<object, Positions>();

function recording(): boolean {
  const state = (tf.engine() as unknown as { state: { activeTape: unknown[] | null } }).state;
  return state.activeTape != null;
}

export function poolingKernels(): tf.KernelConfig[] {
  const cpuMaxPool = cpuKernel("MaxPool");
  const cpuMaxPoolGrad = cpuKernel("MaxPoolGrad");

  const maxPool: tf.KernelFunc = (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const a = args.attrs as unknown as PoolAttrs;
    if (x.dtype !== "float32" || x.shape.length !== 4) return cpuMaxPool(args);
    const be = asFusion(args.backend);
    const c = poolInfo(x.shape, a);
    const n = c.outShape[0] * c.outShape[1] * c.outShape[2] * c.outShape[3];
    const out = be.pool.alloc(n);
    const xv = be.f32(x);
    const pair = isPair(c);
    if (!recording() || xv.length >= 2 ** 31) {
      if (pair) maxPair(xv, c, null, out);
      else maxPositions(xv, c, null, out);
      return be.output([...c.outShape], out);
    }
    const storage = be.pool.alloc(pair ? Math.ceil(n / 4) : n);
    const entry: Positions = { pos: null, which: null, storage };
    if (pair) {
      entry.which = new Uint8Array(storage.buffer, storage.byteOffset, n);
      maxPair(xv, c, entry.which, out);
    } else {
      entry.pos = new Int32Array(storage.buffer, storage.byteOffset, n);
      maxPositions(xv, c, entry.pos, out);
    }
    const y = be.output([...c.outShape], out);
    positionsByOutput.set(y.dataId, entry);
    return y;
  };

  const maxPoolGrad: tf.KernelFunc = (args) => {
    const { dy, input, output } = args.inputs as { dy: tf.TensorInfo; input: tf.TensorInfo; output?: tf.TensorInfo };
    const a = args.attrs as unknown as PoolAttrs;
    if (dy.dtype !== "float32" || input.dtype !== "float32" || input.shape.length !== 4) return cpuMaxPoolGrad(args);
    const be = asFusion(args.backend);
    const c = poolInfo(input.shape, a);
    const dyv = be.f32(dy);
    const cached = output === undefined ? undefined : positionsByOutput.get(output.dataId);
    if (cached !== undefined) positionsByOutput.delete(output!.dataId);
    const n = dyv.length;
    const dxSize = input.shape.reduce((p, d) => p * d, 1);
    if (isPair(c)) {
      let which = cached?.which ?? null;
      let storage = cached?.storage;
      if (which === null || which.length !== n) {
        if (cached !== undefined) be.pool.release(cached.storage);
        storage = be.pool.alloc(Math.ceil(n / 4));
        which = new Uint8Array(storage.buffer, storage.byteOffset, n);
        const scratch = be.pool.alloc(n);
        maxPair(be.f32(input), c, which, scratch);
        be.pool.release(scratch);
      }
      const dx = be.pool.alloc(dxSize);
      maxPairGrad(dyv, which, c, dx);
      be.pool.release(storage!);
      return be.output([...input.shape], dx);
    }
    let pos = cached?.pos ?? null;
    let storage = cached?.storage;
    if (pos === null || pos.length !== n) {
      if (cached !== undefined) be.pool.release(cached.storage);
      storage = be.pool.alloc(n);
      pos = new Int32Array(storage.buffer, storage.byteOffset, n);
      const scratch = be.pool.alloc(n);
      maxPositions(be.f32(input), c, pos, scratch);
      be.pool.release(scratch);
    }
    const dx = be.pool.zeros(dxSize);
    for (let i = 0; i < n; i++) {
      const p = pos[i];
      if (p >= 0) dx[p] += dyv[i];
    }
    be.pool.release(storage!);
    return be.output([...input.shape], dx);
  };

  return [
    { kernelName: "MaxPool", backendName: FUSION_BACKEND, kernelFunc: maxPool },
    { kernelName: "MaxPoolGrad", backendName: FUSION_BACKEND, kernelFunc: maxPoolGrad },
  ];
}
