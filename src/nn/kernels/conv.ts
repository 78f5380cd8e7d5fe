/**
 * 2-D convolution as im2col + GEMM (NHWC input, HWIO filter): `Conv2D`, `FusedConv2D` (bias + activation),
 * `Conv2DBackpropInput` (dy W^T, then col2im scatter-add) and `Conv2DBackpropFilter` (cols^T dy). Strides, dilation and
 * every padding mode (same, valid, explicit) come from tfjs's computeConv2DInfo. The column matrix is built a few
 * images at a time (about 4 MB) so it stays in cache and in the buffer pool; 1x1 stride-1 unpadded convolutions use
 * the input directly. NCHW, non-float32 and prelu go to the cpu kernels.
 */
import * as tf from "@tensorflow/tfjs";
import { type WasmArena, wasmArena } from "../../wasm/arena.js";
import { asFusion, FUSION_BACKEND, type FusionBackend } from "../backend.js";
import { type GemmLayout, NO_TRANS, type Sgemm, TRANS } from "../blas.js";
import { applyActivation, FUSED_ACTIVATIONS } from "./activation.js";
import { reluGradSums } from "./relu-grad.js";
import { allFloat32, cpuKernel } from "./util.js";

type Info = tf.backend_util.Conv2DInfo;
export type Shape4 = [number, number, number, number];

/** im2col chunk for forward and input-gradient GEMMs: 4 MB keeps OpenBLAS near 190 GFLOP/s (145 with 64 MB). */
const CHUNK_FLOATS = 1 << 20;
/** Output rows of a forward im2col chunk: 1 MB, so the bias and activation pass finds them in cache. */
const OUT_CHUNK_FLOATS = 1 << 18;
/** The filter gradient reduces over the chunk's rows; OpenBLAS wants that dimension long (2x faster at 64 MB). */
const FILTER_GRAD_CHUNK_FLOATS = 1 << 24;

/**
 * The most wasm arena memory one of these kernels takes (wasm32 memory ends at 4 GiB and never shrinks); larger
 * tensors take the JavaScript paths.
 */
const ARENA_CAP_BYTES = 1 << 30;

export interface ConvAttrs {
  strides: number | [number, number];
  pad: "same" | "valid" | number | tf.backend_util.ExplicitPadding;
  dataFormat?: "NHWC" | "NCHW";
  dilations?: number | [number, number];
  dimRoundingMode?: "floor" | "round" | "ceil";
  activation?: string;
  leakyreluAlpha?: number;
  inputShape?: Shape4;
  filterShape?: Shape4;
}

export function info(xShape: Shape4, filterShape: Shape4, a: ConvAttrs): Info {
  return tf.backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    a.strides,
    a.dilations ?? 1,
    a.pad,
    a.dimRoundingMode,
    false,
    "channelsLast",
  );
}

/** True when the column matrix is the input itself. */
function isPointwise(c: Info): boolean {
  return (
    c.filterHeight === 1 &&
    c.filterWidth === 1 &&
    c.strideHeight === 1 &&
    c.strideWidth === 1 &&
    c.padInfo.top === 0 &&
    c.padInfo.left === 0 &&
    c.outHeight === c.inHeight &&
    c.outWidth === c.inWidth
  );
}

function imagesPerChunk(c: Info, floats = CHUNK_FLOATS): number {
  const perImage = c.outHeight * c.outWidth * c.filterHeight * c.filterWidth * c.inChannels;
  return Math.max(1, Math.min(c.batchSize, Math.floor(floats / Math.max(1, perImage))));
}

/**
 * cols[(b - b0, oh, ow), (kh, kw, ci)] = x[b, ih, iw, ci] (0 outside the input), for images b0 <= b < b1; with
 * `onesColumn`, every row ends in an extra 1 so that a bias row appended to the filter adds the bias inside the GEMM.
 */
function im2col(x: Float32Array, c: Info, b0: number, b1: number, cols: Float32Array, onesColumn = false): void {
  const { inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, filterHeight: FH, filterWidth: FW } = c;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = c;
  const top = c.padInfo.top;
  const left = c.padInfo.left;
  const span = FW * C;
  let o = 0;
  for (let b = b0; b < b1; b++) {
    const xb = b * H * W * C;
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const iw0 = ow * sw - left;
        // the whole filter row lies inside the input and is one contiguous run of FW * C values
        const contiguous = dw === 1 && iw0 >= 0 && iw0 + FW <= W;
        for (let kh = 0; kh < FH; kh++) {
          const ih = oh * sh - top + kh * dh;
          if (ih < 0 || ih >= H) {
            cols.fill(0, o, o + span);
            o += span;
            continue;
          }
          const xr = xb + ih * W * C;
          if (contiguous) {
            const src = xr + iw0 * C;
            if (span >= 32) cols.set(x.subarray(src, src + span), o);
            else for (let j = 0; j < span; j++) cols[o + j] = x[src + j];
            o += span;
            continue;
          }
          for (let kw = 0; kw < FW; kw++) {
            const iw = iw0 + kw * dw;
            if (iw < 0 || iw >= W) {
              for (let ci = 0; ci < C; ci++) cols[o++] = 0;
            } else {
              const xi = xr + iw * C;
              for (let ci = 0; ci < C; ci++) cols[o++] = x[xi + ci];
            }
          }
        }
        if (onesColumn) cols[o++] = 1;
      }
    }
  }
}

/** dx[b, ih, iw, ci] += cols[(b - b0, oh, ow), (kh, kw, ci)]: the adjoint of im2col. */
function col2im(cols: Float32Array, c: Info, b0: number, b1: number, dx: Float32Array): void {
  const { inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, filterHeight: FH, filterWidth: FW } = c;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = c;
  const top = c.padInfo.top;
  const left = c.padInfo.left;
  const span = FW * C;
  let o = 0;
  for (let b = b0; b < b1; b++) {
    const xb = b * H * W * C;
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const iw0 = ow * sw - left;
        const contiguous = dw === 1 && iw0 >= 0 && iw0 + FW <= W;
        for (let kh = 0; kh < FH; kh++) {
          const ih = oh * sh - top + kh * dh;
          if (ih < 0 || ih >= H) {
            o += span;
            continue;
          }
          const xr = xb + ih * W * C;
          if (contiguous) {
            const dst = xr + iw0 * C;
            for (let j = 0; j < span; j++) dx[dst + j] += cols[o + j];
            o += span;
            continue;
          }
          for (let kw = 0; kw < FW; kw++) {
            const iw = iw0 + kw * dw;
            if (iw < 0 || iw >= W) {
              o += C;
            } else {
              const xi = xr + iw * C;
              for (let ci = 0; ci < C; ci++) dx[xi + ci] += cols[o++];
            }
          }
        }
      }
    }
  }
}

/** Bias and activation applied to rows of the output while they are still in cache. */
export interface Epilogue {
  bias: Float32Array | null;
  activation: string;
  alpha: number;
}

function finish(y: Float32Array, n: number, e: Epilogue | null): void {
  if (e === null) return;
  const b = e.bias;
  if (b !== null && b.length === n && (e.activation === "relu" || e.activation === "linear")) {
    if (e.activation === "relu") biasRelu(y, b, n);
    else biasAdd(y, b, n);
    return;
  }
  if (b !== null && b.length === 1) {
    const v = b[0];
    for (let i = 0; i < y.length; i++) y[i] += v;
  } else if (b !== null) biasAdd(y, b, n);
  applyActivation(y, e.activation, e.alpha);
}

function biasAdd(y: Float32Array, b: Float32Array, n: number): void {
  for (let r = 0; r < y.length; r += n) {
    for (let j = 0; j < n; j++) y[r + j] += b[j];
  }
}

/** y = relu(y + b), branch-free (the sign is random). */
function biasRelu(y: Float32Array, b: Float32Array, n: number): void {
  for (let r = 0; r < y.length; r += n) {
    for (let j = 0; j < n; j++) {
      const v = y[r + j] + b[j];
      y[r + j] = v === Number.NEGATIVE_INFINITY ? 0 : v * Number(v > 0);
    }
  }
}

/** Row-tap convolution applies: stride 1 and no dilation down the rows, filter rows long enough for a GEMM's K. */
export function rowTaps(c: Info): boolean {
  return c.strideHeight === 1 && c.dilationHeight === 1 && c.filterHeight > 1 && c.filterWidth * c.inChannels >= 32;
}

/**
 * rows[(t - t0), ow, (kw, ci)] = x[b, hp - top, ow * sw - left + kw * dw, ci] for the padded input lines t = b * HP + hp,
 * t0 <= t < t1 (0 in the padding): the im2col of one filter row, shared by all FH filter rows.
 */
export function rowIm2col(x: Float32Array, c: Info, HP: number, t0: number, t1: number, rows: Float32Array): void {
  const { inHeight: H, inWidth: W, inChannels: C, outWidth: OW, filterWidth: FW } = c;
  const { strideWidth: sw, dilationWidth: dw } = c;
  const top = c.padInfo.top;
  const left = c.padInfo.left;
  const span = FW * C;
  let o = 0;
  for (let t = t0; t < t1; t++) {
    const b = Math.floor(t / HP);
    const ih = t - b * HP - top;
    if (ih < 0 || ih >= H) {
      rows.fill(0, o, o + OW * span);
      o += OW * span;
      continue;
    }
    const xr = (b * H + ih) * W * C;
    for (let ow = 0; ow < OW; ow++) {
      const iw0 = ow * sw - left;
      if (dw === 1 && iw0 >= 0 && iw0 + FW <= W) {
        const src = xr + iw0 * C;
        rows.set(x.subarray(src, src + span), o);
        o += span;
        continue;
      }
      for (let kw = 0; kw < FW; kw++) {
        const iw = iw0 + kw * dw;
        if (iw < 0 || iw >= W) {
          for (let ci = 0; ci < C; ci++) rows[o++] = 0;
        } else {
          const xi = xr + iw * C;
          for (let ci = 0; ci < C; ci++) rows[o++] = x[xi + ci];
        }
      }
    }
  }
}

/** y[dst + i] = relu(src[from + i] + bias[i % n]) for i < len (len a multiple of n), branch-free. */
function copyBiasRelu(
  src: Float32Array,
  from: number,
  y: Float32Array,
  dst: number,
  len: number,
  bias: Float32Array,
  n: number,
): void {
  for (let r = 0; r < len; r += n) {
    for (let j = 0; j < n; j++) {
      const v = src[from + r + j] + bias[j];
      y[dst + r + j] = v === Number.NEGATIVE_INFINITY ? 0 : v * Number(v > 0);
    }
  }
}

/** y[dst + i] = src[from + i] + bias[i % n] for i < len (len a multiple of n). */
function copyBias(
  src: Float32Array,
  from: number,
  y: Float32Array,
  dst: number,
  len: number,
  bias: Float32Array,
  n: number,
): void {
  for (let r = 0; r < len; r += n) {
    for (let j = 0; j < n; j++) y[dst + r + j] = src[from + r + j] + bias[j];
  }
}

/**
 * Forward convolution for rowTaps geometries with a third of im2col's copying: the input is expanded along the width
 * only (rowIm2col, FW * CI values per output column), and filter row kh is one GEMM over those lines shifted down by
 * kh: out line t (image b, row oh) += rows[t + kh] W[kh], accumulated over kh in a cache-sized chunk of lines. Lines
 * with oh >= OH straddle two images and are dropped; the valid ones are copied out with the bias and activation.
 */
function convForwardRows(
  sgemm: Sgemm,
  be: FusionBackend,
  x: Float32Array,
  w: Float32Array,
  c: Info,
  y: Float32Array,
  epilogue: Epilogue | null,
): void {
  const { batchSize: B, outHeight: OH, outWidth: OW, outChannels: N, filterHeight: FH, filterWidth: FW } = c;
  const K = FW * c.inChannels;
  const HP = OH + FH - 1;
  const lines = B * HP - (FH - 1); // the last image's FH - 1 dropped lines need no input
  const per = Math.max(1, Math.floor(8192 / OW));
  const rows = be.pool.alloc((per + FH - 1) * OW * K);
  const lineLen = OW * N;
  // a per-channel bias with relu or no activation is applied in the copy out of the chunk; anything else afterwards
  const bias = epilogue?.bias ?? null;
  const act = epilogue?.activation;
  const fused = bias !== null && bias.length === N && (act === "relu" || act === "linear") ? act : null;
  // bias + relu by WebAssembly SIMD on a GEMM output chunk that lives in the wasm arena (scalar JS: ~2 ns/element)
  const arena = fused === "relu" ? wasmArena() : null;
  const ep = arena !== null ? arenaEpilogue(arena, per * OW * N, bias!) : null;
  const out = ep?.out ?? be.pool.alloc(per * OW * N);
  for (let t0 = 0; t0 < lines; t0 += per) {
    const t1 = Math.min(lines, t0 + per);
    rowIm2col(x, c, HP, t0, Math.min(B * HP, t1 + FH - 1), rows);
    const M = (t1 - t0) * OW;
    for (let kh = 0; kh < FH; kh++) {
      const a = rows.subarray(kh * OW * K);
      sgemm(NO_TRANS, NO_TRANS, M, N, K, 1, a, K, w.subarray(kh * K * N), N, kh === 0 ? 0 : 1, out, N);
    }
    if (ep !== null) ep.biasRelu(M * N);
    let first = -1;
    let last = -1;
    for (let t = t0; t < t1; t++) {
      const b = Math.floor(t / HP);
      const oh = t - b * HP;
      if (oh >= OH) continue;
      const dst = (b * OH + oh) * lineLen;
      const src = (t - t0) * lineLen;
      if (ep !== null) y.set(out.subarray(src, src + lineLen), dst);
      else if (fused === "relu") copyBiasRelu(out, src, y, dst, lineLen, bias!, N);
      else if (fused === "linear") copyBias(out, src, y, dst, lineLen, bias!, N);
      else y.set(out.subarray(src, src + lineLen), dst);
      if (first < 0) first = dst;
      last = dst + lineLen;
    }
    if (first >= 0 && fused === null) finish(y.subarray(first, last), N, epilogue);
  }
  be.pool.release(rows);
  if (ep !== null) ep.release();
  else be.pool.release(out);
}

/**
 * y[B*OH*OW, CO] = cols(x) W, then the epilogue, chunk by chunk. A bias of one value per output channel rides in the
 * GEMM (a ones column in cols, the bias as an extra filter row), leaving only the activation for the epilogue.
 */
export function convForward(
  sgemm: Sgemm,
  be: FusionBackend,
  x: Float32Array,
  w: Float32Array,
  c: Info,
  y: Float32Array,
  epilogue: Epilogue | null,
): void {
  const K = c.filterHeight * c.filterWidth * c.inChannels;
  const N = c.outChannels;
  const rowsPerImage = c.outHeight * c.outWidth;
  if (isPointwise(c)) {
    sgemm(NO_TRANS, NO_TRANS, c.batchSize * rowsPerImage, N, K, 1, x, K, w, N, 0, y, N);
    finish(y, N, epilogue);
    return;
  }
  const c1Bias = epilogue?.activation === "relu" && epilogue.bias?.length === N ? epilogue.bias : null;
  if (c1Bias !== null && directC1(c)) {
    const arena =
      (x.length + w.length + N + OUT_CHUNK_FLOATS + rowsPerImage * N) * 4 <= ARENA_CAP_BYTES ? wasmArena() : null;
    if (arena !== null) {
      convC1Relu(arena, x, w, c, y, c1Bias);
      return;
    }
  }
  if (rowTaps(c)) {
    convForwardRows(sgemm, be, x, w, c, y, epilogue);
    return;
  }
  const bias = epilogue?.bias ?? null;
  // bias + relu: a WebAssembly SIMD pass over each GEMM chunk in the wasm arena, copied out; other biases ride in the
  // GEMM as a ones column
  const arena = bias !== null && bias.length === N && epilogue?.activation === "relu" ? wasmArena() : null;
  if (arena !== null) {
    convForwardBiasRelu(sgemm, be, arena, x, w, c, y, bias!);
    return;
  }
  const inGemm = bias !== null && bias.length === N;
  const KK = inGemm ? K + 1 : K;
  let wk = w;
  if (inGemm) {
    wk = be.pool.alloc(KK * N);
    wk.set(w);
    wk.set(bias, K * N);
  }
  const rest: Epilogue | null = epilogue === null ? null : { ...epilogue, bias: inGemm ? null : bias };
  // the output chunk stays in cache for the epilogue too (a first layer's K is small, its output rows long)
  const per = Math.min(imagesPerChunk(c), Math.max(1, Math.floor(OUT_CHUNK_FLOATS / (rowsPerImage * N))));
  const cols = be.pool.alloc(per * rowsPerImage * KK);
  for (let b0 = 0; b0 < c.batchSize; b0 += per) {
    const b1 = Math.min(c.batchSize, b0 + per);
    const M = (b1 - b0) * rowsPerImage;
    im2col(x, c, b0, b1, cols, inGemm);
    const ys = y.subarray(b0 * rowsPerImage * N, b1 * rowsPerImage * N);
    sgemm(NO_TRANS, NO_TRANS, M, N, KK, 1, cols, KK, wk, N, 0, ys, N);
    finish(ys, N, rest);
  }
  be.pool.release(cols);
  if (wk !== w) be.pool.release(wk);
}

/** One input channel, stride 1, undilated, valid padding, CO a multiple of 4: conv_c1_relu's geometry. */
function directC1(c: Info): boolean {
  return (
    c.inChannels === 1 &&
    c.outChannels % 4 === 0 &&
    c.strideHeight === 1 &&
    c.strideWidth === 1 &&
    c.dilationHeight === 1 &&
    c.dilationWidth === 1 &&
    c.padInfo.top === 0 &&
    c.padInfo.left === 0 &&
    c.outHeight === c.inHeight - c.filterHeight + 1 &&
    c.outWidth === c.inWidth - c.filterWidth + 1 &&
    c.outHeight > 0 &&
    c.outWidth > 0
  );
}

/**
 * relu(conv(x) + bias) of a single-channel input by the direct wasm kernel (a first layer: with K = FH * FW, im2col
 * and GEMM cost more than the arithmetic), a cache-sized chunk of images at a time, copied out.
 */
function convC1Relu(
  arena: WasmArena,
  x: Float32Array,
  w: Float32Array,
  c: Info,
  y: Float32Array,
  bias: Float32Array,
): void {
  const { batchSize: B, inHeight: H, inWidth: W, filterHeight: FH, filterWidth: FW, outChannels: N } = c;
  const perImage = c.outHeight * c.outWidth * N;
  const per = Math.max(1, Math.min(B, Math.floor(OUT_CHUNK_FLOATS / perImage)));
  const mark = arena.mark();
  try {
    const xP = arena.alloc(x.length * 4);
    const wP = arena.alloc(w.length * 4);
    const bP = arena.alloc(N * 4);
    const outP = arena.alloc(per * perImage * 4);
    arena.f32(xP, x.length).set(x);
    arena.f32(wP, w.length).set(w);
    arena.f32(bP, N).set(bias);
    for (let b0 = 0; b0 < B; b0 += per) {
      const n = Math.min(per, B - b0);
      arena.k.conv_c1_relu(xP + b0 * H * W * 4, n, H, W, FH, FW, wP, bP, N, outP);
      y.set(arena.f32(outP, n * perImage), b0 * perImage);
    }
  } finally {
    arena.release(mark);
  }
}

/**
 * A GEMM output chunk of `floats` in the wasm arena and the bias beside it: `biasRelu(len)` applies bias + ReLU to the
 * chunk's first len values in place (SIMD); `release` frees both. `out` is valid until then (no other arena use).
 */
export function arenaEpilogue(arena: WasmArena, floats: number, bias: Float32Array) {
  const mark = arena.mark();
  const outP = arena.alloc(floats * 4);
  const biasP = arena.alloc(bias.length * 4);
  arena.f32(biasP, bias.length).set(bias);
  return {
    out: arena.f32(outP, floats),
    biasRelu: (len: number) => arena.k.bias_relu(outP, biasP, bias.length, len),
    release: () => arena.release(mark),
  };
}

/** convForward's im2col + GEMM for a per-channel bias and ReLU, with the epilogue by the arena's SIMD kernel. */
function convForwardBiasRelu(
  sgemm: Sgemm,
  be: FusionBackend,
  arena: WasmArena,
  x: Float32Array,
  w: Float32Array,
  c: Info,
  y: Float32Array,
  bias: Float32Array,
): void {
  const K = c.filterHeight * c.filterWidth * c.inChannels;
  const N = c.outChannels;
  const rowsPerImage = c.outHeight * c.outWidth;
  const per = Math.min(imagesPerChunk(c), Math.max(1, Math.floor(OUT_CHUNK_FLOATS / (rowsPerImage * N))));
  const cols = be.pool.alloc(per * rowsPerImage * K);
  const ep = arenaEpilogue(arena, per * rowsPerImage * N, bias);
  const out = ep.out;
  for (let b0 = 0; b0 < c.batchSize; b0 += per) {
    const b1 = Math.min(c.batchSize, b0 + per);
    const M = (b1 - b0) * rowsPerImage;
    im2col(x, c, b0, b1, cols, false);
    sgemm(NO_TRANS, NO_TRANS, M, N, K, 1, cols, K, w, N, 0, out, N);
    ep.biasRelu(M * N);
    y.set(out.subarray(0, M * N), b0 * rowsPerImage * N);
  }
  ep.release();
  be.pool.release(cols);
}

/**
 * The input gradient's tap products, chunk by chunk of `rows` rows of the extended grid (WE wide) so the rows being
 * accumulated stay in cache: for tap (kh, kw) at offset kh * WE + kw, rows d0 .. m1 of the chunk take dyE from row
 * s0 = d0 - offset, with W_k the tap's CI x CO block; the first tap (offset 0) initialises the chunk.
 */
function forEachTap(
  c: Info,
  rows: number,
  WE: number,
  w: Float32Array,
  gemm: (m1: number, s0: number, d0: number, wk: Float32Array, first: boolean) => void,
): void {
  const { inChannels: CI, outChannels: CO, filterHeight: FH, filterWidth: FW } = c;
  const chunk = Math.max(64, Math.floor((1 << 19) / Math.max(CI, CO)));
  for (let m0 = 0; m0 < rows; m0 += chunk) {
    const m1 = Math.min(rows, m0 + chunk);
    for (let kh = 0; kh < FH; kh++) {
      for (let kw = 0; kw < FW; kw++) {
        const off = kh * WE + kw;
        const s0 = Math.max(0, m0 - off);
        const d0 = s0 + off;
        if (d0 >= m1) continue;
        gemm(m1, s0, d0, w.subarray((kh * FW + kw) * CI * CO, (kh * FW + kw + 1) * CI * CO), off === 0);
      }
    }
  }
}

/**
 * dx of a stride-1, undilated convolution without im2col or col2im. dx is accumulated in an extended grid E
 * (HE x WE per image, the input sitting at (top, left)) where output pixel (oh, ow) lands at (oh, ow) and tap (kh, kw)
 * reaches (oh + kh, ow + kw). With dy laid out on that grid (zeros elsewhere), tap k adds dyE[r] W_k^T to row
 * r + kh * WE + kw of E for every row r at once: one GEMM per tap over the flattened batch, run chunk by chunk so the
 * rows of E being accumulated stay in cache. Padding rows of dyE are zero, so rows that wrap into the next image add 0.
 */
function shiftedInputGrad(
  sgemm: Sgemm,
  be: FusionBackend,
  dy: Float32Array,
  w: Float32Array,
  c: Info,
  planes: boolean,
): Float32Array {
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: CI, outHeight: OH, outWidth: OW, outChannels: CO } = c;
  const { filterHeight: FH, filterWidth: FW } = c;
  const top = c.padInfo.top;
  const left = c.padInfo.left;
  const HE = Math.max(OH + FH - 1, top + H);
  const WE = Math.max(OW + FW - 1, left + W);
  const rows = B * HE * WE;
  const dyE = be.pool.alloc(rows * CO);
  const rowLen = OW * CO;
  for (let b = 0; b < B; b++) {
    for (let oh = 0; oh < OH; oh++) {
      const dst = (b * HE + oh) * WE * CO;
      dyE.set(dy.subarray((b * OH + oh) * rowLen, (b * OH + oh + 1) * rowLen), dst);
      if (WE > OW) dyE.fill(0, dst + rowLen, dst + WE * CO);
    }
    if (HE > OH) dyE.fill(0, (b * HE + OH) * WE * CO, (b + 1) * HE * WE * CO);
  }
  if (!planes) {
    const dx = channelsLastInputGrad(sgemm, be, dyE, w, c, HE, WE);
    be.pool.release(dyE);
    return dx;
  }
  // E is accumulated transposed, one plane of `rows` values per input channel (eT[ci][r]): C^T += W_k dyE^T has
  // the output channels as its long side, which OpenBLAS runs ~2-3x faster than dyE W_k^T with few channels. In the
  // wasm arena when there is one, so that the transposing copy into dx runs as SIMD 4 x 4 blocks.
  const arena = (rows + B * H * W) * CI * 4 <= ARENA_CAP_BYTES ? wasmArena() : null;
  const mark = arena?.mark() ?? 0;
  const eP = arena === null ? 0 : arena.alloc(rows * CI * 4);
  const dxP = arena === null ? 0 : arena.alloc(B * H * W * CI * 4);
  const eT = arena === null ? be.pool.alloc(rows * CI) : arena.f32(eP, rows * CI);
  forEachTap(c, rows, WE, w, (m1, s0, d0, wk, first) => {
    // E^T[:, d0 .. m1) (+)= W_k dyE[s0 ..]^T
    sgemm(NO_TRANS, TRANS, CI, m1 - d0, CO, 1, wk, CO, dyE.subarray(s0 * CO), CO, first ? 0 : 1, eT.subarray(d0), rows);
  });
  be.pool.release(dyE);
  // dx[b, ih, iw, ci] = eT[ci][(b * HE + ih + top) * WE + left + iw]
  const dx = be.pool.alloc(B * H * W * CI);
  if (arena !== null) {
    arena.k.planes_nhwc(eP, rows, CI, B, HE, WE, top, left, H, W, dxP);
    dx.set(arena.f32(dxP, dx.length));
    arena.release(mark);
    return dx;
  }
  for (let b = 0; b < B; b++) {
    for (let ih = 0; ih < H; ih++) {
      const src = (b * HE + ih + top) * WE + left;
      const dst = (b * H + ih) * W * CI;
      for (let ci = 0; ci < CI; ci++) {
        const from = ci * rows + src;
        for (let iw = 0; iw < W; iw++) dx[dst + iw * CI + ci] = eT[from + iw]!;
      }
    }
  }
  be.pool.release(eT);
  return dx;
}

/**
 * shiftedInputGrad's taps with E channels-last (E[r][ci] += dyE[r - offset] W_k^T), the orientation oneDNN runs
 * fastest (the bench CNN's conv2: 13.7 vs 23.8 ms as planes, one profile); dx is then E's rows inside the input, copied line by line.
 */
function channelsLastInputGrad(
  sgemm: Sgemm,
  be: FusionBackend,
  dyE: Float32Array,
  w: Float32Array,
  c: Info,
  HE: number,
  WE: number,
): Float32Array {
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: CI, outChannels: CO } = c;
  const rows = B * HE * WE;
  const e = be.pool.alloc(rows * CI);
  forEachTap(c, rows, WE, w, (m1, s0, d0, wk, first) => {
    // E[d0 .. m1) (+)= dyE[s0 ..] W_k^T
    sgemm(
      NO_TRANS,
      TRANS,
      m1 - d0,
      CI,
      CO,
      1,
      dyE.subarray(s0 * CO),
      CO,
      wk,
      CO,
      first ? 0 : 1,
      e.subarray(d0 * CI),
      CI,
    );
  });
  const dx = be.pool.alloc(B * H * W * CI);
  const { top, left } = c.padInfo;
  for (let b = 0; b < B; b++) {
    for (let ih = 0; ih < H; ih++) {
      const from = ((b * HE + ih + top) * WE + left) * CI;
      dx.set(e.subarray(from, from + W * CI), (b * H + ih) * W * CI);
    }
  }
  be.pool.release(e);
  return dx;
}

/** Rows of a filter-gradient im2col chunk: ~4 MB, so the GEMM reads what im2col just wrote from cache. */
const FILTER_GRAD_ARENA_FLOATS = 1 << 20;
/** Rows per chunk of the direct 3 x 3 single-channel filter gradient (its dy chunk stays in L2 across channel groups). */
const DIRECT_GRAD_ROWS = 4096;

/**
 * dW = im2col(x)^T dy with the im2col in the wasm arena (one bulk copy per filter row instead of a TypedArray.set
 * per row, which cost ~60 ns each) chunk by chunk, each chunk small enough to stay in cache for its GEMM (OpenBLAS
 * reaches full speed on these at ~2K rows). Accumulated transposed, dW^T = dy^T cols (~15% faster than cols^T dy here),
 * then transposed into the HWIO filter. Returns null without the arena.
 */
function arenaFilterGrad(
  sgemm: Sgemm,
  be: FusionBackend,
  x: Float32Array,
  dy: Float32Array,
  c: Info,
  relu: ReluMask | null,
): Float32Array | null {
  const K = c.filterHeight * c.filterWidth * c.inChannels;
  const N = c.outChannels;
  const rows = c.batchSize * c.outHeight * c.outWidth;
  // 3 x 3 over one input channel: the direct kernel (chunks that stay in L2 across its passes over the channels)
  const direct = directC1(c) && c.filterHeight === 3 && c.filterWidth === 3;
  const chunk = direct
    ? Math.min(rows, DIRECT_GRAD_ROWS)
    : Math.max(64, Math.min(rows, Math.floor(FILTER_GRAD_ARENA_FLOATS / Math.max(K, N))));
  const arena = (x.length + chunk * (K + 2 * N)) * 4 <= ARENA_CAP_BYTES ? wasmArena() : null;
  if (arena === null) return null;
  const mark = arena.mark();
  const dwT = be.pool.alloc(N * K);
  try {
    const xP = arena.alloc(x.length * 4);
    const colsP = direct ? 0 : arena.alloc(chunk * K * 4);
    // direct: each chunk's sums (float32) are added into float64 totals
    const sumP = direct ? arena.alloc(K * N * 4) : 0;
    const total = direct ? new Float64Array(K * N) : null;
    // with a relu mask: dy and y chunk by chunk into the arena, dz = dy * (y > 0) there, bias sums beside it
    // (the direct kernel reads dy from the arena with or without a mask)
    const dyP = relu === null && !direct ? 0 : arena.alloc(chunk * N * 4);
    const yP = relu === null ? 0 : arena.alloc(chunk * N * 4);
    const accP = relu === null ? 0 : arena.alloc(N * 8);
    arena.f32(xP, x.length).set(x);
    const cols = direct ? null : arena.f32(colsP, chunk * K);
    const dyChunk = relu === null ? null : arena.f32(dyP, chunk * N);
    if (relu !== null) new Float64Array(arena.f32(accP, 2 * N).buffer, accP, N).fill(0);
    const { inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = c;
    const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dwl } = c;
    for (let r0 = 0; r0 < rows; r0 += chunk) {
      const r1 = Math.min(rows, r0 + chunk);
      const { top, left } = c.padInfo;
      if (!direct)
        arena.k.im2col(xP, H, W, C, OH, OW, c.filterHeight, c.filterWidth, sh, sw, dh, dwl, top, left, r0, r1, colsP);
      let g = dy.subarray(r0 * N);
      if (relu !== null && dyChunk !== null) {
        dyChunk.set(dy.subarray(r0 * N, r1 * N));
        arena.f32(yP, chunk * N).set(relu.y.subarray(r0 * N, r1 * N));
        arena.k.relu_grad_sums(dyP, yP, r1 - r0, N, dyP, accP);
        g = dyChunk;
      }
      if (total !== null) {
        if (relu === null) arena.f32(dyP, chunk * N).set(dy.subarray(r0 * N, r1 * N));
        const sums = arena.f32(sumP, K * N).fill(0);
        arena.k.filter_grad_c1_3x3(xP, H, W, OH, OW, dyP, N, r0, r1, sumP);
        for (let i = 0; i < K * N; i++) total[i] += sums[i]!;
        continue;
      }
      // dW^T[N, K] (+)= dy[r0 .. r1)^T cols
      sgemm(TRANS, NO_TRANS, N, K, r1 - r0, 1, g, N, cols!, K, r0 === 0 ? 0 : 1, dwT, K);
    }
    if (relu !== null) relu.db.set(new Float64Array(arena.f32(accP, 2 * N).buffer, accP, N));
    if (total !== null) {
      // the direct kernel's sums are already HWIO (CI = 1)
      const dw = be.pool.alloc(K * N);
      dw.set(total);
      be.pool.release(dwT);
      return dw;
    }
  } finally {
    arena.release(mark);
  }
  const dw = be.pool.alloc(K * N);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) dw[k * N + n] = dwT[n * K + k];
  be.pool.release(dwT);
  return dw;
}

/** For the filter gradient of relu(conv + bias): its output y (dy is masked by y > 0) and where the bias gradient goes. */
export interface ReluMask {
  y: Float32Array;
  db: Float32Array;
}

/**
 * dW of a convolution (HWIO, c's filter shape) from its input x and output gradient dy; with `relu`, dy is first
 * masked by the relu output's sign and the bias gradient written (the wasm arena's fused pass for channel counts that
 * are multiples of 4, JS otherwise).
 */
export function convFilterGrad(
  sgemm: Sgemm,
  be: FusionBackend,
  xv: Float32Array,
  dyv: Float32Array,
  c: Info,
  relu: ReluMask | null = null,
): Float32Array {
  const N = c.outChannels;
  const rowsPerImage = c.outHeight * c.outWidth;
  if (relu !== null && N % 4 === 0 && !isPointwise(c) && rowsPerImage > 0) {
    const fast = arenaFilterGrad(sgemm, be, xv, dyv, c, relu);
    if (fast !== null) return fast;
  }
  let g = dyv;
  if (relu !== null) {
    g = be.pool.alloc(dyv.length);
    reluGradSums(dyv, relu.y, N, g, relu.db);
  }
  try {
    return filterGrad(sgemm, be, xv, g, c);
  } finally {
    if (g !== dyv) be.pool.release(g);
  }
}

function filterGrad(sgemm: Sgemm, be: FusionBackend, xv: Float32Array, dyv: Float32Array, c: Info): Float32Array {
  const K = c.filterHeight * c.filterWidth * c.inChannels;
  const N = c.outChannels;
  const rowsPerImage = c.outHeight * c.outWidth;
  const dw = be.pool.alloc(K * N);
  if (c.batchSize * rowsPerImage === 0) return dw.fill(0);
  if (isPointwise(c)) {
    sgemm(TRANS, NO_TRANS, K, N, c.batchSize * rowsPerImage, 1, xv, K, dyv, N, 0, dw, N);
    return dw;
  }
  const fast = arenaFilterGrad(sgemm, be, xv, dyv, c, null);
  if (fast !== null) {
    be.pool.release(dw);
    return fast;
  }
  const per = imagesPerChunk(c, FILTER_GRAD_CHUNK_FLOATS);
  const cols = be.pool.alloc(per * rowsPerImage * K);
  for (let b0 = 0; b0 < c.batchSize; b0 += per) {
    const b1 = Math.min(c.batchSize, b0 + per);
    const M = (b1 - b0) * rowsPerImage;
    im2col(xv, c, b0, b1, cols);
    // dW[K, N] (+)= cols[M, K]^T dy[M, N]
    sgemm(TRANS, NO_TRANS, K, N, M, 1, cols, K, dyv.subarray(b0 * rowsPerImage * N), N, b0 === 0 ? 0 : 1, dw, N);
  }
  be.pool.release(cols);
  return dw;
}

/**
 * For a stride-1, undilated convolution, the geometry of dx as a forward convolution of dy with the flipped filter
 * (the wasm fallback computes its input gradient this way)
 * (padding FH-1-top above, whatever makes the output the input's size below); null when that does not apply.
 */
export function flippedConv(c: Info): Info | null {
  if (c.strideHeight !== 1 || c.strideWidth !== 1 || c.dilationHeight !== 1 || c.dilationWidth !== 1) return null;
  const top = c.filterHeight - 1 - c.padInfo.top;
  const left = c.filterWidth - 1 - c.padInfo.left;
  const bottom = c.inHeight - c.outHeight - top + c.filterHeight - 1;
  const right = c.inWidth - c.outWidth - left + c.filterWidth - 1;
  if (top < 0 || left < 0 || bottom < 0 || right < 0) return null;
  const f = tf.backend_util.computeConv2DInfo(
    [c.batchSize, c.outHeight, c.outWidth, c.outChannels],
    [c.filterHeight, c.filterWidth, c.outChannels, c.inChannels],
    1,
    1,
    [
      [0, 0],
      [top, bottom],
      [left, right],
      [0, 0],
    ],
    undefined,
    false,
    "channelsLast",
  );
  return f.outHeight === c.inHeight && f.outWidth === c.inWidth ? f : null;
}

/**
 * The filter and bias gradients of relu(conv2d(x, W) + bias) from its output y, for a conv whose input needs no
 * gradient: dy is masked by y > 0 chunk by chunk next to the GEMM that consumes it, never written out whole.
 */
export const RELU_FILTER_GRAD_KERNEL = "FusionkitReluConvFilterGrad";

export function convKernels(sgemm: Sgemm, layout: GemmLayout): tf.KernelConfig[] {
  const cpuConv = cpuKernel("Conv2D");
  const cpuFused = cpuKernel("FusedConv2D");
  const cpuInput = cpuKernel("Conv2DBackpropInput");
  const cpuFilter = cpuKernel("Conv2DBackpropFilter");
  const nhwc = (a: ConvAttrs) => a.dataFormat === undefined || a.dataFormat === "NHWC";

  const conv2d: tf.KernelFunc = (args) => {
    const { x, filter } = args.inputs as { x: tf.TensorInfo; filter: tf.TensorInfo };
    const a = args.attrs as unknown as ConvAttrs;
    if (!allFloat32(x, filter) || !nhwc(a)) return cpuConv(args);
    const be = asFusion(args.backend);
    const c = info(x.shape as Shape4, filter.shape as Shape4, a);
    const y = be.pool.alloc(c.outShape[0] * c.outShape[1] * c.outShape[2] * c.outShape[3]);
    if (y.length > 0) convForward(sgemm, be, be.f32(x), be.f32(filter), c, y, null);
    return be.output([...c.outShape], y);
  };

  const fusedConv2d: tf.KernelFunc = (args) => {
    const { x, filter, bias, preluActivationWeights } = args.inputs as {
      x: tf.TensorInfo;
      filter: tf.TensorInfo;
      bias?: tf.TensorInfo;
      preluActivationWeights?: tf.TensorInfo;
    };
    const a = args.attrs as unknown as ConvAttrs;
    const activation = a.activation ?? "linear";
    const co = filter.shape[3];
    const biasSize = bias === undefined ? 1 : bias.shape.reduce((p, d) => p * d, 1);
    const biasOk = biasSize === 1 || (biasSize === co && bias?.shape.at(-1) === co);
    if (!allFloat32(x, filter, bias) || !nhwc(a) || preluActivationWeights !== undefined || !biasOk)
      return cpuFused(args);
    if (!FUSED_ACTIVATIONS.has(activation)) return cpuFused(args);
    const be = asFusion(args.backend);
    const c = info(x.shape as Shape4, filter.shape as Shape4, a);
    const y = be.pool.alloc(c.outShape[0] * c.outShape[1] * c.outShape[2] * c.outShape[3]);
    const epilogue = { bias: bias === undefined ? null : be.f32(bias), activation, alpha: a.leakyreluAlpha ?? 0.2 };
    if (y.length > 0) convForward(sgemm, be, be.f32(x), be.f32(filter), c, y, epilogue);
    return be.output([...c.outShape], y);
  };

  const backpropInput: tf.KernelFunc = (args) => {
    const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
    const a = args.attrs as unknown as ConvAttrs;
    if (!allFloat32(dy, filter) || !nhwc(a) || a.inputShape === undefined) return cpuInput(args);
    const be = asFusion(args.backend);
    const c = info(a.inputShape, filter.shape as Shape4, a);
    const dyv = be.f32(dy);
    const w = be.f32(filter);
    const K = c.filterHeight * c.filterWidth * c.inChannels;
    const N = c.outChannels;
    const rowsPerImage = c.outHeight * c.outWidth;
    const size = c.inShape[0] * c.inShape[1] * c.inShape[2] * c.inShape[3];
    if (
      size > 0 &&
      !isPointwise(c) &&
      c.strideHeight === 1 &&
      c.strideWidth === 1 &&
      c.dilationHeight === 1 &&
      c.dilationWidth === 1
    )
      return be.output([...c.inShape], shiftedInputGrad(sgemm, be, dyv, w, c, layout.planes));
    if (isPointwise(c)) {
      const dx = be.pool.alloc(size);
      sgemm(NO_TRANS, TRANS, c.batchSize * rowsPerImage, K, N, 1, dyv, N, w, N, 0, dx, K);
      return be.output([...c.inShape], dx);
    }
    const dx = be.pool.zeros(size);
    const per = imagesPerChunk(c);
    const cols = be.pool.alloc(per * rowsPerImage * K);
    for (let b0 = 0; b0 < c.batchSize && size > 0; b0 += per) {
      const b1 = Math.min(c.batchSize, b0 + per);
      const M = (b1 - b0) * rowsPerImage;
      // dcols[M, K] = dy[M, N] W[K, N]^T
      sgemm(NO_TRANS, TRANS, M, K, N, 1, dyv.subarray(b0 * rowsPerImage * N), N, w, N, 0, cols, K);
      col2im(cols, c, b0, b1, dx);
    }
    be.pool.release(cols);
    return be.output([...c.inShape], dx);
  };

  const backpropFilter: tf.KernelFunc = (args) => {
    const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
    const a = args.attrs as unknown as ConvAttrs;
    if (!allFloat32(x, dy) || !nhwc(a) || a.filterShape === undefined) return cpuFilter(args);
    const be = asFusion(args.backend);
    const c = info(x.shape as Shape4, a.filterShape, a);
    return be.output([...a.filterShape], filterGrad(sgemm, be, be.f32(x), be.f32(dy), c));
  };

  // inputs x, dy and y = relu(conv(x) + bias); outputs the filter gradient and the bias gradient
  const reluFilterGrad: tf.KernelFunc = (args) => {
    const { x, dy, y } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo; y: tf.TensorInfo };
    const a = args.attrs as unknown as ConvAttrs;
    if (!allFloat32(x, dy, y) || !nhwc(a) || a.filterShape === undefined)
      throw new Error(`${RELU_FILTER_GRAD_KERNEL}: float32 NHWC x, dy and y and a filterShape`);
    const be = asFusion(args.backend);
    const c = info(x.shape as Shape4, a.filterShape, a);
    const db = be.pool.alloc(c.outChannels);
    const dw = convFilterGrad(sgemm, be, be.f32(x), be.f32(dy), c, { y: be.f32(y), db });
    return [be.output([...a.filterShape], dw), be.output([c.outChannels], db)];
  };

  return [
    { kernelName: RELU_FILTER_GRAD_KERNEL, backendName: FUSION_BACKEND, kernelFunc: reluFilterGrad },
    { kernelName: "Conv2D", backendName: FUSION_BACKEND, kernelFunc: conv2d },
    { kernelName: "FusedConv2D", backendName: FUSION_BACKEND, kernelFunc: fusedConv2d },
    { kernelName: "Conv2DBackpropInput", backendName: FUSION_BACKEND, kernelFunc: backpropInput },
    { kernelName: "Conv2DBackpropFilter", backendName: FUSION_BACKEND, kernelFunc: backpropFilter },
  ];
}
