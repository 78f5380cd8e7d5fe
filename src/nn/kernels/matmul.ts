/**
 * GEMM kernels: `BatchMatMul` and `_FusedMatMul` (bias + activation) as one CBLAS sgemm per batch entry, with tfjs's
 * transposeA / transposeB passed to BLAS as CblasTrans (no copies). Batch dims must be equal or one side 1 (what
 * tfjs-backend-cpu supports too); anything else (non-float32, prelu, bias that is not one row) goes to the cpu kernel.
 */
import type * as tf from "@tensorflow/tfjs";
import { asFusion, FUSION_BACKEND, type FusionBackend } from "../backend.js";
import type { Sgemm } from "../blas.js";
import { NO_TRANS, TRANS } from "../blas.js";
import { applyActivation, FUSED_ACTIVATIONS, fillRows } from "./activation.js";
import { allFloat32, cpuKernel, sizeOf } from "./util.js";

interface MatMulPlan {
  outShape: number[];
  batch: number;
  batchA: number;
  batchB: number;
  m: number;
  n: number;
  k: number;
}

function plan(a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean): MatMulPlan | null {
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (ra < 2 || rb < 2) return null;
  const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (k !== kb) return null; // let the cpu kernel raise tfjs's own error
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const batchA = sizeOf(outerA);
  const batchB = sizeOf(outerB);
  let outer: number[];
  if (batchA === batchB && outerA.length === outerB.length && outerA.every((d, i) => d === outerB[i])) outer = outerA;
  else if (batchB === 1 && outerA.length >= outerB.length) outer = outerA;
  else if (batchA === 1 && outerB.length >= outerA.length) outer = outerB;
  else return null;
  return { outShape: [...outer, m, n], batch: Math.max(batchA, batchB), batchA, batchB, m, n, k };
}

/** out (batch x m x n) = op(A) op(B) [+ out when beta = 1], one sgemm per batch entry. */
function gemmBatches(
  sgemm: Sgemm,
  p: MatMulPlan,
  av: Float32Array,
  bv: Float32Array,
  transposeA: boolean,
  transposeB: boolean,
  out: Float32Array,
  beta: number,
): void {
  const { m, n, k } = p;
  const lda = transposeA ? m : k;
  const ldb = transposeB ? k : n;
  const ta = transposeA ? TRANS : NO_TRANS;
  const tb = transposeB ? TRANS : NO_TRANS;
  if (m === 0 || n === 0) return;
  if (k === 0) {
    if (beta === 0) out.fill(0);
    return;
  }
  const sa = m * k;
  const sb = k * n;
  const sc = m * n;
  for (let i = 0; i < p.batch; i++) {
    const ai = p.batchA === 1 ? av : av.subarray(i * sa, (i + 1) * sa);
    const bi = p.batchB === 1 ? bv : bv.subarray(i * sb, (i + 1) * sb);
    const ci = p.batch === 1 ? out : out.subarray(i * sc, (i + 1) * sc);
    sgemm(ta, tb, m, n, k, 1, ai, lda, bi, ldb, beta, ci, n);
  }
}

export function matMulKernels(sgemm: Sgemm): tf.KernelConfig[] {
  const cpuBatchMatMul = cpuKernel("BatchMatMul");
  const cpuFusedMatMul = cpuKernel("_FusedMatMul");

  const batchMatMul: tf.KernelFunc = (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    const p = allFloat32(a, b) ? plan(a, b, transposeA, transposeB) : null;
    if (p === null) return cpuBatchMatMul(args);
    const be: FusionBackend = asFusion(args.backend);
    const out = be.pool.alloc(sizeOf(p.outShape));
    gemmBatches(sgemm, p, be.f32(a), be.f32(b), transposeA, transposeB, out, 0);
    return be.output(p.outShape, out);
  };

  const fusedMatMul: tf.KernelFunc = (args) => {
    const { a, b, bias, preluActivationWeights } = args.inputs as {
      a: tf.TensorInfo;
      b: tf.TensorInfo;
      bias?: tf.TensorInfo;
      preluActivationWeights?: tf.TensorInfo;
    };
    const { transposeA, transposeB, activation, leakyreluAlpha } = args.attrs as {
      transposeA: boolean;
      transposeB: boolean;
      activation: string;
      leakyreluAlpha?: number;
    };
    const p = allFloat32(a, b, bias) ? plan(a, b, transposeA, transposeB) : null;
    const biasOk = bias === undefined || sizeOf(bias.shape) === 1 || bias.shape[bias.shape.length - 1] === p?.n;
    const biasRow = bias === undefined || sizeOf(bias.shape) === 1 || sizeOf(bias.shape) === p?.n;
    if (p === null || !biasOk || !biasRow || preluActivationWeights !== undefined || !FUSED_ACTIVATIONS.has(activation))
      return cpuFusedMatMul(args);
    const be = asFusion(args.backend);
    const out = be.pool.alloc(sizeOf(p.outShape));
    let beta = 0;
    if (bias !== undefined) {
      const bv = be.f32(bias);
      if (bv.length === 1) out.fill(bv[0]);
      else fillRows(out, bv, p.n);
      beta = 1;
    }
    gemmBatches(sgemm, p, be.f32(a), be.f32(b), transposeA, transposeB, out, beta);
    applyActivation(out, activation, leakyreluAlpha);
    return be.output(p.outShape, out);
  };

  return [
    { kernelName: "BatchMatMul", backendName: FUSION_BACKEND, kernelFunc: batchMatMul },
    { kernelName: "_FusedMatMul", backendName: FUSION_BACKEND, kernelFunc: fusedMatMul },
  ];
}
