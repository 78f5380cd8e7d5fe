/**
 * What the tfjs `wasm` backend (4.22) needs to train, as kernels composed from its own (registered over its kernels
 * for the `wasm` backend only):
 * - `BatchMatMul` / `_FusedMatMul` with transposeA / transposeB: explicit Transpose, then an untransposed product (its
 *   transposed products are slow, and _FusedMatMul's are wrong); a bias that is not one row is added after the product.
 * - `Conv2DBackpropFilter` (missing in wasm): dW[kh, kw] = x-window^T dy, one GEMM per filter tap ("GEMM slices").
 * - `MaxPoolGrad`: its result disagrees with tfjs cpu; recomputed in JS over the wasm heap (first maximum).
 * - `Conv2DBackpropInput` for stride 1: a forward Conv2D (XNNPACK) of dy with the flipped filter (wasm's own
 *   backprop-input kernel is a plain loop, ~10x slower); other strides keep wasm's kernel.
 * - `_FusedMatMul` / `FusedConv2D` biases: wasm checks the rank of the shape stored with the data, which a reshape
 *   leaves as it was (tf.gather's output, for one, keeps the 4-d shape of its internal form), so a rank-1 bias whose
 *   stored shape is not rank 1 is copied to a fresh buffer first.
 */
import * as tf from "@tensorflow/tfjs";
import { flippedConv } from "./kernels/conv.js";
import { maxPositions } from "./kernels/pooling.js";

type Info = tf.TensorInfo;

interface WasmLike {
  dataIdMap: { get(dataId: tf.DataId): { shape: number[] } | undefined };
  disposeData(dataId: tf.DataId): boolean;
  makeOutput(shape: number[], dtype: tf.DataType): Info;
  typedArrayFromHeap(t: Info): Float32Array;
}

let done = false;

export function registerWasmKernels(): void {
  if (done) return;
  done = true;
  const original = new Map(tf.getKernelsForBackend("wasm").map((k) => [k.kernelName, k]));
  const call = (name: string, backend: unknown, inputs: Record<string, Info>, attrs: Record<string, unknown> = {}) =>
    original.get(name)!.kernelFunc({ inputs, backend: backend as object, attrs: attrs as tf.NamedAttrMap }) as Info;
  const swapLast = (backend: unknown, t: Info) => {
    const perm = t.shape.map((_, i) => i);
    const r = perm.length;
    [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
    return call("Transpose", backend, { x: t }, { perm });
  };
  const override = (name: string, kernelFunc: tf.KernelFunc) => {
    const base = original.get(name);
    if (base !== undefined) tf.unregisterKernel(name, "wasm");
    tf.registerKernel({ ...(base ?? {}), kernelName: name, backendName: "wasm", kernelFunc });
  };

  /**
   * The bias as wasm's fused kernels accept it: `bias` itself when its stored shape is rank 1, else a copy with a
   * rank-1 shape (the caller disposes it when it differs).
   */
  const rankOneBias = (be: WasmLike, bias: Info): Info => {
    if (bias.shape.length !== 1 || be.dataIdMap.get(bias.dataId)?.shape.length === 1) return bias;
    const copy = be.makeOutput([...bias.shape], bias.dtype);
    be.typedArrayFromHeap(copy).set(be.typedArrayFromHeap(bias));
    return copy;
  };

  /** Runs `name` on explicitly transposed operands; returns the output and the temporaries to dispose. */
  const untransposed = (name: string, args: Parameters<tf.KernelFunc>[0], extra: Record<string, Info> = {}) => {
    const { a, b } = args.inputs as { a: Info; b: Info };
    const attrs = args.attrs as { transposeA: boolean; transposeB: boolean };
    const temps: Info[] = [];
    const at = attrs.transposeA ? swapLast(args.backend, a) : a;
    const bt = attrs.transposeB ? swapLast(args.backend, b) : b;
    if (at !== a) temps.push(at);
    if (bt !== b) temps.push(bt);
    const out = call(
      name,
      args.backend,
      { a: at, b: bt, ...extra },
      { ...args.attrs, transposeA: false, transposeB: false },
    );
    for (const t of temps) (args.backend as WasmLike).disposeData(t.dataId);
    return out;
  };

  override("BatchMatMul", (args) => {
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    if (!transposeA && !transposeB)
      return call("BatchMatMul", args.backend, args.inputs as Record<string, Info>, args.attrs);
    return untransposed("BatchMatMul", args);
  });

  const ACTIVATION_KERNEL: Record<string, string> = {
    relu: "Relu",
    relu6: "Relu6",
    elu: "Elu",
    sigmoid: "Sigmoid",
    leakyrelu: "LeakyRelu",
  };
  override("_FusedMatMul", (args) => {
    const be = args.backend as WasmLike;
    const { bias, preluActivationWeights } = args.inputs as { bias?: Info; preluActivationWeights?: Info };
    const { activation, leakyreluAlpha } = args.attrs as { activation: string; leakyreluAlpha?: number };
    const n = (args.inputs.b as Info).shape.at((args.attrs as { transposeB: boolean }).transposeB ? -2 : -1);
    const rowBias = bias === undefined || bias.shape.length === 1;
    if (rowBias || preluActivationWeights !== undefined) {
      const extra: Record<string, Info> = {};
      const b1 = bias === undefined ? undefined : rankOneBias(be, bias);
      if (b1 !== undefined) extra.bias = b1;
      if (preluActivationWeights !== undefined) extra.preluActivationWeights = preluActivationWeights;
      const out = untransposed("_FusedMatMul", args, extra);
      if (b1 !== bias) be.disposeData(b1!.dataId);
      return out;
    }
    // wasm only takes a rank-1 bias: a row bias is reshaped, anything else is added after the product
    if (bias.shape.reduce((p, d) => p * d, 1) === n && bias.shape.at(-1) === n) {
      const flat = call("Reshape", be, { x: bias }, { shape: [n] });
      const b1 = rankOneBias(be, flat);
      const out = untransposed("_FusedMatMul", args, { bias: b1 });
      if (b1 !== flat) be.disposeData(b1.dataId);
      be.disposeData(flat.dataId);
      return out;
    }
    const prod = untransposed("BatchMatMul", args);
    const sum = call("Add", be, { a: prod, b: bias });
    be.disposeData(prod.dataId);
    const kernel = ACTIVATION_KERNEL[activation];
    if (kernel === undefined) return sum;
    const out = call(kernel, be, { x: sum }, { alpha: leakyreluAlpha ?? 0.2 });
    be.disposeData(sum.dataId);
    return out;
  });

  override("FusedConv2D", (args) => {
    const be = args.backend as WasmLike;
    const { bias } = args.inputs as { bias?: Info };
    const b1 = bias === undefined ? undefined : rankOneBias(be, bias);
    if (b1 === bias) return call("FusedConv2D", be, args.inputs as Record<string, Info>, args.attrs);
    const out = call("FusedConv2D", be, { ...(args.inputs as Record<string, Info>), bias: b1! }, args.attrs);
    be.disposeData(b1!.dataId);
    return out;
  });

  override("Conv2DBackpropFilter", (args) => {
    const be = args.backend as WasmLike;
    const { x, dy } = args.inputs as { x: Info; dy: Info };
    const a = args.attrs as {
      strides: number | [number, number];
      pad: "same" | "valid" | number | tf.backend_util.ExplicitPadding;
      dimRoundingMode?: "floor" | "round" | "ceil";
      filterShape: [number, number, number, number];
    };
    const c = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      a.filterShape,
      a.strides,
      1,
      a.pad,
      a.dimRoundingMode,
    );
    const { top, bottom, left, right } = c.padInfo;
    const M = c.batchSize * c.outHeight * c.outWidth;
    const [FH, FW, CI, CO] = a.filterShape;
    const padded =
      top || bottom || left || right
        ? call(
            "PadV2",
            be,
            { x },
            {
              paddings: [
                [0, 0],
                [top, bottom],
                [left, right],
                [0, 0],
              ],
              constantValue: 0,
            },
          )
        : x;
    const dy2 = call("Reshape", be, { x: dy }, { shape: [M, CO] });
    const dyT = call("Transpose", be, { x: dy2 }, { perm: [1, 0] });
    const taps: Info[] = [];
    for (let kh = 0; kh < FH; kh++) {
      for (let kw = 0; kw < FW; kw++) {
        const h0 = kh * c.dilationHeight;
        const w0 = kw * c.dilationWidth;
        const win = call(
          "StridedSlice",
          be,
          { x: padded },
          {
            begin: [0, h0, w0, 0],
            end: [
              c.batchSize,
              h0 + (c.outHeight - 1) * c.strideHeight + 1,
              w0 + (c.outWidth - 1) * c.strideWidth + 1,
              CI,
            ],
            strides: [1, c.strideHeight, c.strideWidth, 1],
            beginMask: 0,
            endMask: 0,
            ellipsisMask: 0,
            newAxisMask: 0,
            shrinkAxisMask: 0,
          },
        );
        const win2 = call("Reshape", be, { x: win }, { shape: [M, CI] });
        // dW[kh, kw]^T [CO, CI] = dy^T [CO, M] x-window [M, CI]
        taps.push(call("BatchMatMul", be, { a: dyT, b: win2 }, { transposeA: false, transposeB: false }));
        be.disposeData(win2.dataId);
        be.disposeData(win.dataId);
      }
    }
    const out = be.makeOutput([FH, FW, CI, CO], "float32");
    const dw = be.typedArrayFromHeap(out);
    for (let t = 0; t < taps.length; t++) {
      const g = be.typedArrayFromHeap(taps[t]);
      const base = t * CI * CO;
      for (let co = 0; co < CO; co++) for (let ci = 0; ci < CI; ci++) dw[base + ci * CO + co] = g[co * CI + ci];
      be.disposeData(taps[t].dataId);
    }
    be.disposeData(dyT.dataId);
    be.disposeData(dy2.dataId);
    if (padded !== x) be.disposeData(padded.dataId);
    return out;
  });

  override("Conv2DBackpropInput", (args) => {
    const be = args.backend as WasmLike;
    const { dy, filter } = args.inputs as { dy: Info; filter: Info };
    const a = args.attrs as {
      strides: number | [number, number];
      pad: "same" | "valid" | number | tf.backend_util.ExplicitPadding;
      dimRoundingMode?: "floor" | "round" | "ceil";
      dataFormat?: string;
      inputShape: [number, number, number, number];
    };
    const c = tf.backend_util.computeConv2DInfo(
      a.inputShape,
      filter.shape as [number, number, number, number],
      a.strides,
      1,
      a.pad,
      a.dimRoundingMode,
    );
    const f = a.dataFormat === "NCHW" || dy.dtype !== "float32" ? null : flippedConv(c);
    if (f === null) return call("Conv2DBackpropInput", be, args.inputs as Record<string, Info>, args.attrs);
    // W'[kh, kw, co, ci] = W[FH-1-kh, FW-1-kw, ci, co]
    const rev = call("Reverse", be, { x: filter }, { dims: [0, 1] });
    const wf = call("Transpose", be, { x: rev }, { perm: [0, 1, 3, 2] });
    be.disposeData(rev.dataId);
    const { top, bottom, left, right } = f.padInfo;
    const dx = call(
      "Conv2D",
      be,
      { x: dy, filter: wf },
      {
        strides: 1,
        dilations: 1,
        pad: [
          [0, 0],
          [top, bottom],
          [left, right],
          [0, 0],
        ],
        dataFormat: "NHWC",
      },
    );
    be.disposeData(wf.dataId);
    return dx;
  });

  override("MaxPoolGrad", (args) => {
    const be = args.backend as WasmLike;
    const { dy, input } = args.inputs as { dy: Info; input: Info };
    const a = args.attrs as {
      filterSize: number | [number, number];
      strides: number | [number, number];
      pad: "same" | "valid" | number | tf.backend_util.ExplicitPadding;
      dimRoundingMode?: "floor" | "round" | "ceil";
    };
    const c = tf.backend_util.computePool2DInfo(
      input.shape as [number, number, number, number],
      a.filterSize,
      a.strides,
      1,
      a.pad,
      a.dimRoundingMode,
    );
    const pos = new Int32Array(dy.shape.reduce((p, d) => p * d, 1));
    maxPositions(be.typedArrayFromHeap(input), c, pos, new Float32Array(pos.length));
    const out = be.makeOutput([...input.shape], "float32");
    const dx = be.typedArrayFromHeap(out);
    const dyv = be.typedArrayFromHeap(dy);
    dx.fill(0);
    for (let i = 0; i < pos.length; i++) if (pos[i] >= 0) dx[pos[i]] += dyv[i];
    return out;
  });
}
