/**
 * relu(conv2d(x, W) + bias) followed by a k x k max-pool (stride k, valid) as one kernel, for inference: the
 * convolution runs as conv.ts's row-tap GEMMs on chunks of whole images kept in the wasm arena, and each chunk is
 * biased, rectified and pooled there by SIMD kernels, so only the pooled output (1 / k^2 of the conv's) is written
 * to the tensor, and the full-size activation never makes a pass through JavaScript. Values equal the two kernels run
 * one after the other (FusedConv2D, then MaxPool). Other geometries run those two steps on the fusionkit kernels.
 * nn's conv2d layer uses it when no gradient tape records (see layers.ts).
 */
import * as tf from "@tensorflow/tfjs";
import { wasmArena } from "../../wasm/arena.js";
import { asFusion, FUSION_BACKEND, type FusionBackend } from "../backend.js";
import { NO_TRANS, type Sgemm } from "../blas.js";
import { type ConvAttrs, convForward, info, rowIm2col, rowTaps, type Shape4 } from "./conv.js";
import { maxPositions } from "./pooling.js";
import { allFloat32 } from "./util.js";

export const CONV_RELU_MAX_POOL_KERNEL = "FusionkitConvReluMaxPool";

/** Output rows of one GEMM chunk (whole images): large enough for OpenBLAS to use both cores. */
const CHUNK_ROWS = 8192;

type Info = tf.backend_util.Conv2DInfo;

function pooledShape(c: Info, k: number): Shape4 {
  return [c.batchSize, Math.floor(c.outHeight / k), Math.floor(c.outWidth / k), c.outChannels];
}

/** Row-tap convolution over chunks of whole images in the arena, bias + relu + pool there, pooled rows into y. */
function fusedRows(
  sgemm: Sgemm,
  be: FusionBackend,
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array,
  c: Info,
  k: number,
  y: Float32Array,
): boolean {
  const arena = wasmArena();
  if (arena === null) return false;
  const { batchSize: B, outHeight: OH, outWidth: OW, outChannels: N, filterHeight: FH, filterWidth: FW } = c;
  const K = FW * c.inChannels;
  const HP = OH + FH - 1;
  const images = Math.max(1, Math.min(B, Math.floor(CHUNK_ROWS / (HP * OW))));
  const lines = B * HP - (FH - 1);
  const PH = Math.floor(OH / k);
  const PW = Math.floor(OW / k);
  const pooledImage = PH * PW * N;
  const rows = be.pool.alloc((images * HP + FH - 1) * OW * K);
  const mark = arena.mark();
  const outP = arena.alloc(images * HP * OW * N * 4);
  const biasP = arena.alloc(N * 4);
  const poolP = arena.alloc(images * pooledImage * 4);
  arena.f32(biasP, N).set(bias);
  const out = arena.f32(outP, images * HP * OW * N);
  try {
    for (let b0 = 0; b0 < B; b0 += images) {
      const b1 = Math.min(B, b0 + images);
      const t0 = b0 * HP;
      const t1 = Math.min(lines, b1 * HP);
      rowIm2col(x, c, HP, t0, Math.min(B * HP, t1 + FH - 1), rows);
      const M = (t1 - t0) * OW;
      for (let kh = 0; kh < FH; kh++) {
        sgemm(
          NO_TRANS,
          NO_TRANS,
          M,
          N,
          K,
          1,
          rows.subarray(kh * OW * K),
          K,
          w.subarray(kh * K * N),
          N,
          kh === 0 ? 0 : 1,
          out,
          N,
        );
      }
      arena.k.bias_relu(outP, biasP, N, M * N);
      for (let b = b0; b < b1; b++) {
        const src = outP + (b - b0) * HP * OW * N * 4;
        arena.k.max_pool(src, OH, OW, N, k, poolP + (b - b0) * pooledImage * 4);
      }
      y.set(arena.f32(poolP, (b1 - b0) * pooledImage), b0 * pooledImage);
    }
  } finally {
    arena.release(mark);
    be.pool.release(rows);
  }
  return true;
}

export function convPoolKernel(sgemm: Sgemm): tf.KernelConfig {
  const kernelFunc: tf.KernelFunc = (args) => {
    const { x, filter, bias } = args.inputs as { x: tf.TensorInfo; filter: tf.TensorInfo; bias: tf.TensorInfo };
    const a = args.attrs as unknown as ConvAttrs & { poolSize: number };
    const k = a.poolSize;
    const co = filter.shape[3]!;
    if (!allFloat32(x, filter, bias) || bias.shape.reduce((p, d) => p * d, 1) !== co || !(k >= 1))
      throw new Error(`${CONV_RELU_MAX_POOL_KERNEL}: float32 NHWC input, a bias per output channel and a pool size`);
    const be = asFusion(args.backend);
    const c = info(x.shape as Shape4, filter.shape as Shape4, a);
    const shape = pooledShape(c, k);
    const y = be.pool.alloc(shape[0] * shape[1] * shape[2] * shape[3]);
    if (y.length === 0) return be.output(shape, y);
    const xv = be.f32(x);
    const wv = be.f32(filter);
    const bv = be.f32(bias);
    if (rowTaps(c) && fusedRows(sgemm, be, xv, wv, bv, c, k, y)) return be.output(shape, y);
    // Any other geometry: the fused convolution, then the pooling kernel's loop.
    const full = be.pool.alloc(c.outShape[0] * c.outShape[1] * c.outShape[2] * c.outShape[3]);
    convForward(sgemm, be, xv, wv, c, full, { bias: bv, activation: "relu", alpha: 0 });
    const p = tf.backend_util.computePool2DInfo([...c.outShape] as Shape4, k, k, 1, "valid");
    maxPositions(full, p, null, y);
    be.pool.release(full);
    return be.output(shape, y);
  };
  return { kernelName: CONV_RELU_MAX_POOL_KERNEL, backendName: FUSION_BACKEND, kernelFunc };
}
