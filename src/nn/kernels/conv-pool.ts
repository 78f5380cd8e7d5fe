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
import { NO_TRANS, type Sgemm, TRANS } from "../blas.js";
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

/**
 * Copies images b0 <= b < b1 of x into dst zero-padded to HP x L pixels (the input at row top, column left), the
 * padded grid a stride-1 convolution's taps shift over.
 */
function padImages(x: Float32Array, c: Info, b0: number, b1: number, HP: number, L: number, dst: Float32Array): void {
  const { inHeight: H, inWidth: W, inChannels: C } = c;
  const top = c.padInfo.top;
  const left = c.padInfo.left;
  const span = Math.min(W, L - left) * C;
  let o = 0;
  for (let b = b0; b < b1; b++) {
    for (let hp = 0; hp < HP; hp++, o += L * C) {
      const ih = hp - top;
      if (ih < 0 || ih >= H) {
        dst.fill(0, o, o + L * C);
        continue;
      }
      dst.fill(0, o, o + left * C);
      const from = (b * H + ih) * W * C;
      dst.set(x.subarray(from, from + span), o + left * C);
      dst.fill(0, o + left * C + span, o + L * C);
    }
  }
}

/**
 * The convolution over chunks of whole images, computed transposed: one plane of output lines per channel,
 * C^T += W_t^T S_t^T for each tap t, which OpenBLAS runs ~1.5x faster than the channels-last product when the output
 * channels are few; then pooled, biased and rectified from the planes into channels-last rows of y (wasm SIMD).
 * With a width stride of 1 and enough input channels, the taps are the FH x FW filter pixels and S_t is the
 * (padded) input itself shifted by tap t (no im2col: output lines are computed across the full padded width L and the
 * FW - 1 extra columns dropped by the pooling); otherwise the taps are the FH filter rows over rowIm2col's lines.
 */
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
  const C = c.inChannels;
  const direct = c.strideWidth === 1 && c.dilationWidth === 1 && C >= 16;
  const padded = c.padInfo.top > 0 || c.padInfo.left > 0 || c.padInfo.bottom > 0 || c.padInfo.right > 0;
  const K = direct ? C : FW * C; // values per tap and line position
  const TW = direct ? FW : 1; // taps per filter row
  const taps = FH * TW;
  const L = direct ? OW + FW - 1 : OW; // positions per line
  const HP = OH + FH - 1; // lines per image
  const images = Math.max(1, Math.min(B, Math.floor(CHUNK_ROWS / (HP * L))));
  const pooledImage = Math.floor(OH / k) * Math.floor(OW / k) * N;
  const src = direct && !padded ? null : be.pool.alloc(images * HP * L * K);
  // tap t transposed: wt[t][n][j] = w[t][j][n] (taps are consecutive K x N blocks of the HWIO filter)
  const wt = be.pool.alloc(taps * N * K);
  for (let t = 0; t < taps; t++) {
    for (let j = 0; j < K; j++) {
      const from = (t * K + j) * N;
      for (let n = 0; n < N; n++) wt[(t * N + n) * K + j] = w[from + n];
    }
  }
  const mark = arena.mark();
  const outP = arena.alloc(images * HP * L * N * 4);
  const biasP = arena.alloc(N * 4);
  const poolP = arena.alloc(images * pooledImage * 4);
  arena.f32(biasP, N).set(bias);
  const out = arena.f32(outP, images * HP * L * N);
  try {
    for (let b0 = 0; b0 < B; b0 += images) {
      const b1 = Math.min(B, b0 + images);
      const s = src ?? x.subarray(b0 * HP * L * K);
      if (src !== null && direct) padImages(x, c, b0, b1, HP, L, src);
      else if (src !== null) rowIm2col(x, c, HP, b0 * HP, b1 * HP, src);
      // the last image's last FH - 1 lines and TW - 1 positions are outside every output (and past the input)
      const M = (b1 - b0) * HP * L - (FH - 1) * L - (TW - 1);
      for (let t = 0; t < taps; t++) {
        const shift = (Math.floor(t / TW) * L + (t % TW)) * K;
        sgemm(NO_TRANS, TRANS, N, M, K, 1, wt.subarray(t * N * K), K, s.subarray(shift), K, t === 0 ? 0 : 1, out, M);
      }
      arena.k.pool_planes(outP, M, N, b1 - b0, HP, L, OH, OW, k, biasP, poolP);
      y.set(arena.f32(poolP, (b1 - b0) * pooledImage), b0 * pooledImage);
    }
  } finally {
    arena.release(mark);
    if (src !== null) be.pool.release(src);
    be.pool.release(wt);
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
