/**
 * relu(conv2d(x, W) + bias) followed by a k x k max-pool (stride k, valid) as one kernel: the convolution runs as
 * GEMMs on chunks of whole images kept in the wasm arena, and each chunk is biased, rectified and pooled there by SIMD
 * kernels, so only the pooled output (1 / k^2 of the conv's) is written to the tensor, and the full-size activation
 * never makes a pass through JavaScript. Values equal the two kernels run one after the other (FusedConv2D, then
 * MaxPool). Under a gradient tape it also returns each window's winner, from which the gradient kernel at the end of
 * this file builds the conv's output gradient and the bias gradient in one pass (no MaxPoolGrad, no relu mask over the
 * full-size activation). Other geometries run those two steps on the fusionkit kernels. Used by nn's conv2d layer.
 */
import * as tf from "@tensorflow/tfjs";
import { wasmArena } from "../../wasm/arena.js";
import { asFusion, FUSION_BACKEND, type FusionBackend } from "../backend.js";
import { type GemmLayout, NO_TRANS, type Sgemm, TRANS } from "../blas.js";
import { type ConvAttrs, convForward, info, rowIm2col, rowTaps, type Shape4 } from "./conv.js";
import { maxPositions } from "./pooling.js";
import { allFloat32 } from "./util.js";

export const CONV_RELU_MAX_POOL_KERNEL = "FusionkitConvReluMaxPool";

/**
 * Output rows of one GEMM chunk (whole images): the bench CNN's conv2 took 28.6 / 24.5 / 23.4 / 22.5 / 23.2 ms at
 * 2K / 8K / 16K / 32K / 64K rows (medians of 20, interleaved), the planes then 8 MB.
 */
const CHUNK_ROWS = 1 << 15;

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
 * The convolution over chunks of whole images, C += S_t W_t for each tap t; then pooled, biased and rectified into
 * channels-last rows of y (wasm SIMD). With `planes` the products are computed transposed, one plane of output lines
 * per channel (C^T += W_t^T S_t^T), which OpenBLAS runs ~1.5x faster than the channels-last product when the output
 * channels are few; oneDNN runs the channels-last one faster (conv2 of the bench CNN: 11 vs 19-21 ms).
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
  codes: Float32Array | null,
  planes: boolean,
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
  // taps are consecutive K x N blocks of the HWIO filter; for planes, each transposed: wt[t][n][j] = w[t][j][n]
  const wt = planes ? be.pool.alloc(taps * N * K) : w;
  if (planes) {
    for (let t = 0; t < taps; t++) {
      for (let j = 0; j < K; j++) {
        const from = (t * K + j) * N;
        for (let n = 0; n < N; n++) wt[(t * N + n) * K + j] = w[from + n];
      }
    }
  }
  const mark = arena.mark();
  const outP = arena.alloc(images * HP * L * N * 4);
  const biasP = arena.alloc(N * 4);
  const poolP = arena.alloc(images * pooledImage * 4);
  const codesP = codes === null ? 0 : arena.alloc(images * pooledImage * 4);
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
        const beta = t === 0 ? 0 : 1;
        const wk = wt.subarray(t * N * K);
        if (planes) sgemm(NO_TRANS, TRANS, N, M, K, 1, wk, K, s.subarray(shift), K, beta, out, M);
        else sgemm(NO_TRANS, NO_TRANS, M, N, K, 1, s.subarray(shift), K, wk, N, beta, out, N);
      }
      if (planes) arena.k.pool_planes(outP, M, N, b1 - b0, HP, L, OH, OW, k, biasP, poolP, codesP);
      else arena.k.pool_rows(outP, N, b1 - b0, HP, L, OH, OW, k, biasP, poolP, codesP);
      y.set(arena.f32(poolP, (b1 - b0) * pooledImage), b0 * pooledImage);
      if (codes !== null) codes.set(arena.f32(codesP, (b1 - b0) * pooledImage), b0 * pooledImage);
    }
  } finally {
    arena.release(mark);
    if (src !== null) be.pool.release(src);
    if (planes) be.pool.release(wt);
  }
  return true;
}

/**
 * For the window codes of a training forward pass: each pooled output's winner as kh * k + kw (from the flat input
 * index maxPositions found), or -1 where the output is not positive.
 */
function windowCodes(pos: Int32Array, y: Float32Array, full: Shape4, k: number, codes: Float32Array): void {
  const [, H, W, C] = full;
  const PH = Math.floor(H / k);
  const PW = Math.floor(W / k);
  for (let o = 0; o < pos.length; o++) {
    const p = pos[o];
    if (!(y[o] > 0) || p < 0) {
      codes[o] = -1;
      continue;
    }
    const pixel = Math.floor(p / C);
    const iw = pixel % W;
    const ih = Math.floor(pixel / W) % H;
    const q = Math.floor(o / C);
    codes[o] = (ih - (Math.floor(q / PW) % PH) * k) * k + (iw - (q % PW) * k);
  }
}

/**
 * Attributes: conv2d's, `poolSize`, and `withCodes`: when true the kernel also returns each pooled output's window code
 * (see pool_planes in wasm/kernels.ts), which the gradient kernel below turns into the conv's output gradient.
 */
export function convPoolKernel(sgemm: Sgemm, layout: GemmLayout): tf.KernelConfig {
  const kernelFunc: tf.KernelFunc = (args) => {
    const { x, filter, bias } = args.inputs as { x: tf.TensorInfo; filter: tf.TensorInfo; bias: tf.TensorInfo };
    const a = args.attrs as unknown as ConvAttrs & { poolSize: number; withCodes?: boolean };
    const k = a.poolSize;
    const co = filter.shape[3]!;
    if (!allFloat32(x, filter, bias) || bias.shape.reduce((p, d) => p * d, 1) !== co || !(k >= 1))
      throw new Error(`${CONV_RELU_MAX_POOL_KERNEL}: float32 NHWC input, a bias per output channel and a pool size`);
    const be = asFusion(args.backend);
    const c = info(x.shape as Shape4, filter.shape as Shape4, a);
    const shape = pooledShape(c, k);
    const n = shape[0] * shape[1] * shape[2] * shape[3];
    const y = be.pool.alloc(n);
    const codes = a.withCodes === true ? be.pool.alloc(n) : null;
    const done = () => (codes === null ? be.output(shape, y) : [be.output(shape, y), be.output(shape, codes)]);
    if (n === 0) return done();
    const xv = be.f32(x);
    const wv = be.f32(filter);
    const bv = be.f32(bias);
    if (rowTaps(c) && fusedRows(sgemm, be, xv, wv, bv, c, k, y, codes, layout.planes)) return done();
    // Any other geometry: the fused convolution, then the pooling kernel's loop.
    const full = be.pool.alloc(c.outShape[0] * c.outShape[1] * c.outShape[2] * c.outShape[3]);
    convForward(sgemm, be, xv, wv, c, full, { bias: bv, activation: "relu", alpha: 0 });
    const p = tf.backend_util.computePool2DInfo([...c.outShape] as Shape4, k, k, 1, "valid");
    const pos = codes === null ? null : new Int32Array(n);
    maxPositions(full, p, pos, y);
    if (pos !== null && codes !== null) windowCodes(pos, y, [...c.outShape] as Shape4, k, codes);
    be.pool.release(full);
    return done();
  };
  return { kernelName: CONV_RELU_MAX_POOL_KERNEL, backendName: FUSION_BACKEND, kernelFunc };
}

/** Images per chunk of pool2GradWasm: ~1 MB of dz, so the copy out reads it from cache. */
const POOL_GRAD_CHUNK_FLOATS = 1 << 18;

/**
 * conv-pool's 2 x 2 gradient (the JS loop below, bit for bit) by the wasm kernel, a cache-sized chunk of images at a
 * time: g and codes copied in, dz copied out. Returns the bias gradient (float64 sums), or null without the arena.
 */
function pool2GradWasm(
  g: Float32Array,
  codes: Float32Array,
  B: number,
  PH: number,
  PW: number,
  C: number,
  dz: Float32Array,
): Float64Array | null {
  const a = wasmArena();
  if (a === null) return null;
  const pooled = PH * PW * C;
  const per = Math.max(1, Math.min(B, Math.floor(POOL_GRAD_CHUNK_FLOATS / (4 * pooled))));
  const mark = a.mark();
  try {
    const gP = a.alloc(per * pooled * 4);
    const cP = a.alloc(per * pooled * 4);
    const dzP = a.alloc(per * pooled * 16);
    const accP = a.alloc(C * 8);
    a.f64(accP, C).fill(0);
    for (let b0 = 0; b0 < B; b0 += per) {
      const n = Math.min(per, B - b0);
      a.f32(gP, n * pooled).set(g.subarray(b0 * pooled, (b0 + n) * pooled));
      a.f32(cP, n * pooled).set(codes.subarray(b0 * pooled, (b0 + n) * pooled));
      a.k.pool2_grad(gP, cP, n, PH, PW, C, dzP, accP);
      dz.set(a.f32(dzP, n * pooled * 4), b0 * pooled * 4);
    }
    return a.f64(accP, C).slice();
  } finally {
    a.release(mark);
  }
}

export const CONV_RELU_MAX_POOL_GRAD_KERNEL = "FusionkitConvReluMaxPoolGrad";

/**
 * The gradient through the pooling, the relu and the bias of the fused kernel: inputs dy (the pooled output's
 * gradient) and the forward pass's window codes, attributes `outShape` (the conv's output) and `poolSize`; outputs dz
 * (dy at each positive window's winner, 0 everywhere else: every element written once) and the bias gradient.
 */
export function convPoolGradKernel(): tf.KernelConfig {
  const kernelFunc: tf.KernelFunc = (args) => {
    const { dy, codes } = args.inputs as { dy: tf.TensorInfo; codes: tf.TensorInfo };
    const { outShape, poolSize: k } = args.attrs as unknown as { outShape: Shape4; poolSize: number };
    const be = asFusion(args.backend);
    const g = be.f32(dy);
    const w = be.f32(codes);
    const [B, OH, OW, C] = outShape;
    const PH = Math.floor(OH / k);
    const PW = Math.floor(OW / k);
    if (g.length !== B * PH * PW * C || w.length !== g.length)
      throw new Error(`${CONV_RELU_MAX_POOL_GRAD_KERNEL}: dy and codes must be [${B}, ${PH}, ${PW}, ${C}]`);
    const dz = be.pool.alloc(B * OH * OW * C);
    const sums =
      k === 2 && 2 * PH === OH && 2 * PW === OW && C % 4 === 0 && B > 0 ? pool2GradWasm(g, w, B, PH, PW, C, dz) : null;
    if (sums !== null) {
      const db = be.pool.alloc(C);
      db.set(sums);
      return [be.output([...outShape], dz), be.output([C], db)];
    }
    if (k * PH < OH || k * PW < OW) dz.fill(0); // rows or columns no window covers
    const acc = new Float64Array(C);
    const row = OW * C;
    let o = 0;
    for (let b = 0; b < B; b++) {
      for (let py = 0; py < PH; py++) {
        for (let px = 0; px < PW; px++, o += C) {
          const p = ((b * OH + py * k) * OW + px * k) * C;
          if (k === 2) {
            const q = p + row;
            for (let ch = 0; ch < C; ch++) {
              const d = g[o + ch];
              const win = w[o + ch];
              acc[ch] += d * Number(win >= 0);
              dz[p + ch] = d * Number(win === 0);
              dz[p + C + ch] = d * Number(win === 1);
              dz[q + ch] = d * Number(win === 2);
              dz[q + C + ch] = d * Number(win === 3);
            }
            continue;
          }
          for (let ch = 0; ch < C; ch++) {
            const d = g[o + ch];
            const win = w[o + ch];
            acc[ch] += d * Number(win >= 0);
            for (let kh = 0; kh < k; kh++)
              for (let kw = 0; kw < k; kw++) dz[p + (kh * OW + kw) * C + ch] = d * Number(win === kh * k + kw);
          }
        }
      }
    }
    const db = be.pool.alloc(C);
    db.set(acc);
    return [be.output([...outShape], dz), be.output([C], db)];
  };
  return { kernelName: CONV_RELU_MAX_POOL_GRAD_KERNEL, backendName: FUSION_BACKEND, kernelFunc };
}
