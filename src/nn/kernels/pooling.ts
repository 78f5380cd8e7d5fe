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
 * For every output pixel and channel, the flat input index of the window's first maximum (-1 for an empty window),
 * and optionally the maximum itself.
 */
export function maxPositions(x: Float32Array, c: Info, pos: Int32Array, out: Float32Array | null): void {
  const { inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = c;
  const { strideHeight: sh, strideWidth: sw, filterHeight: FH, filterWidth: FW } = c;
  const top = c.padInfo.top;
  const left = c.padInfo.left;
  const best = new Float32Array(C);
  let o = 0;
  for (let b = 0; b < c.batchSize; b++) {
    const xb = b * H * W * C;
    for (let oh = 0; oh < OH; oh++) {
      const h0 = oh * sh - top;
      for (let ow = 0; ow < OW; ow++) {
        const w0 = ow * sw - left;
        best.fill(Number.NEGATIVE_INFINITY);
        pos.fill(-1, o, o + C);
        for (let kh = 0; kh < FH; kh++) {
          const ih = h0 + kh;
          if (ih < 0 || ih >= H) continue;
          for (let kw = 0; kw < FW; kw++) {
            const iw = w0 + kw;
            if (iw < 0 || iw >= W) continue;
            const xi = xb + (ih * W + iw) * C;
            for (let ch = 0; ch < C; ch++) {
              const v = x[xi + ch];
              if (v > best[ch]) {
                best[ch] = v;
                pos[o + ch] = xi + ch;
              }
            }
          }
        }
        if (out !== null) out.set(best, o);
        o += C;
      }
    }
  }
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
    maxPositions(be.f32(x), c, new Int32Array(n), out);
    return be.output([...c.outShape], out);
  };

  const maxPoolGrad: tf.KernelFunc = (args) => {
    const { dy, input } = args.inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
    const a = args.attrs as unknown as PoolAttrs;
    if (dy.dtype !== "float32" || input.dtype !== "float32" || input.shape.length !== 4) return cpuMaxPoolGrad(args);
    const be = asFusion(args.backend);
    const c = poolInfo(input.shape, a);
    const dyv = be.f32(dy);
    const pos = new Int32Array(dyv.length);
    maxPositions(be.f32(input), c, pos, null);
    const dx = be.pool.zeros(input.shape.reduce((p, d) => p * d, 1));
    for (let i = 0; i < pos.length; i++) {
      const p = pos[i];
      if (p >= 0) dx[p] += dyv[i];
    }
    return be.output([...input.shape], dx);
  };

  return [
    { kernelName: "MaxPool", backendName: FUSION_BACKEND, kernelFunc: maxPool },
    { kernelName: "MaxPoolGrad", backendName: FUSION_BACKEND, kernelFunc: maxPoolGrad },
  ];
}
