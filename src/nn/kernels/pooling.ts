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

/**
 * Argmax positions computed by a forward MaxPool while a gradient tape records, keyed by the output's dataId, so that
 * MaxPoolGrad need not search every window again. Entries die with the output tensor (WeakMap) or on first use.
 */
const positionsByOutput = new WeakMap<object, { pos: Int32Array; storage: Float32Array }>();

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
    if (!recording() || be.f32(x).length >= 2 ** 31) {
      maxPositions(be.f32(x), c, null, out);
      return be.output([...c.outShape], out);
    }
    const storage = be.pool.alloc(n);
    const pos = new Int32Array(storage.buffer, storage.byteOffset, n);
    maxPositions(be.f32(x), c, pos, out);
    const y = be.output([...c.outShape], out);
    positionsByOutput.set(y.dataId, { pos, storage });
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
    let pos: Int32Array;
    let storage: Float32Array;
    if (cached !== undefined && cached.pos.length === dyv.length) {
      positionsByOutput.delete(output!.dataId);
      ({ pos, storage } = cached);
    } else {
      storage = be.pool.alloc(dyv.length);
      pos = new Int32Array(storage.buffer, storage.byteOffset, dyv.length);
      const scratch = be.pool.alloc(dyv.length);
      maxPositions(be.f32(input), c, pos, scratch);
      be.pool.release(scratch);
    }
    const dx = be.pool.zeros(input.shape.reduce((p, d) => p * d, 1));
    for (let i = 0; i < pos.length; i++) {
      const p = pos[i];
      if (p >= 0) dx[p] += dyv[i];
    }
    be.pool.release(storage);
    return be.output([...input.shape], dx);
  };

  return [
    { kernelName: "MaxPool", backendName: FUSION_BACKEND, kernelFunc: maxPool },
    { kernelName: "MaxPoolGrad", backendName: FUSION_BACKEND, kernelFunc: maxPoolGrad },
  ];
}
