/**
 * Dense and conv2d layers (bias + activation) that take the fastest path tfjs allows in each mode. Under a gradient
 * tape tfjs only fuses linear activations, so `tf.fused.conv2d(..., activation: "relu")` falls back to three kernels
 * (product, bias add, relu); here training runs the fused product-with-bias and then the activation (two), and
 * inference runs one fused kernel.
 */
import * as tf from "@tensorflow/tfjs";
import { FUSION_BACKEND } from "./backend.js";
import { RELU_FILTER_GRAD_KERNEL } from "./kernels/conv.js";
import { CONV_RELU_MAX_POOL_GRAD_KERNEL, CONV_RELU_MAX_POOL_KERNEL } from "./kernels/conv-pool.js";
import { GELU_GRAD_KERNEL, GELU_KERNEL } from "./kernels/gelu.js";
import { RELU_GRAD_BIAS_KERNEL, RELU_GRAD_KERNEL } from "./kernels/relu-grad.js";

type CustomGradientFunc = Parameters<typeof tf.customGrad>[0];

export type Activation = "linear" | "relu" | "relu6" | "elu" | "sigmoid" | "leakyrelu";

/** Whether a gradient tape is recording (inside tf.grad / valueAndGrads / minimize). */
export function recording(): boolean {
  return (tf.engine() as unknown as { state: { gradientDepth: number } }).state.gradientDepth > 0;
}

function activate(y: tf.Tensor, activation: Activation, alpha: number): tf.Tensor {
  switch (activation) {
    case "linear":
      return y;
    case "relu":
      return tf.relu(y);
    case "relu6":
      return tf.relu6(y);
    case "elu":
      return tf.elu(y);
    case "sigmoid":
      return tf.sigmoid(y);
    case "leakyrelu":
      return tf.leakyRelu(y, alpha);
  }
}

/** x W + b, then the activation. */
export function dense(
  x: tf.Tensor,
  w: tf.Tensor,
  b?: tf.Tensor,
  activation: Activation = "linear",
  alpha = 0.2,
): tf.Tensor {
  if (!recording() || activation === "linear")
    return tf.fused.matMul({ a: x, b: w, bias: b, activation, leakyreluAlpha: alpha });
  return activate(tf.fused.matMul({ a: x, b: w, bias: b }), activation, alpha);
}

export interface Conv2DOptions {
  strides?: number | [number, number];
  pad?: "same" | "valid" | number;
  dilations?: number | [number, number];
  activation?: Activation;
  leakyreluAlpha?: number;
  /**
   * false when nothing needs the gradient with respect to x (a first layer reading input data): training then skips
   * the Conv2DBackpropInput that tfjs's fused conv gradient always computes.
   */
  inputGradient?: boolean;
  /**
   * A k x k max-pool with stride k ("valid") after the activation. With relu and a per-channel bias on the fusionkit
   * backend, conv, bias, relu and pool run as one kernel (the full-size activation is never written out), and under a
   * tape the gradient through pool, relu and bias is one kernel too; otherwise conv2d then tf.maxPool.
   */
  maxPool?: number;
}

/** NHWC conv2d with an HWIO filter, plus bias and activation (and optionally a max-pool). */
export function conv2d(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias?: tf.Tensor,
  options: Conv2DOptions = {},
): tf.Tensor4D {
  const k = options.maxPool;
  if (k === undefined) return conv2dOnly(x, filter, bias, options);
  const { strides = 1, pad = "valid", dilations = 1, activation = "linear" } = options;
  const undilated = dilations === 1 || (Array.isArray(dilations) && dilations[0] === 1 && dilations[1] === 1);
  if (
    activation === "relu" &&
    undilated &&
    bias !== undefined &&
    bias.size === filter.shape[3] &&
    tf.getBackend() === FUSION_BACKEND &&
    x.dtype === "float32"
  ) {
    if (recording()) return convRelu(x, filter, bias, strides, pad, options.inputGradient !== false, k);
    const attrs = { strides, pad, dataFormat: "NHWC", dilations: 1, poolSize: k };
    return tf
      .engine()
      .runKernel(CONV_RELU_MAX_POOL_KERNEL, { x, filter, bias }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
  }
  return tf.maxPool(conv2dOnly(x, filter, bias, options), k, k, "valid");
}

function conv2dOnly(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor | undefined,
  options: Conv2DOptions,
): tf.Tensor4D {
  const { strides = 1, pad = "valid", dilations = 1, activation = "linear", leakyreluAlpha = 0.2 } = options;
  const base = { x, filter, strides, pad, dilations, bias };
  if (!recording()) return tf.fused.conv2d({ ...base, activation, leakyreluAlpha });
  const undilated = dilations === 1 || (Array.isArray(dilations) && dilations[0] === 1 && dilations[1] === 1);
  if (activation === "relu" && undilated)
    return convRelu(x, filter, bias, strides, pad, options.inputGradient !== false);
  const y =
    options.inputGradient === false && undilated
      ? convNoInputGrad(x, filter, bias, strides, pad)
      : tf.fused.conv2d(base);
  return activate(y, activation, leakyreluAlpha) as tf.Tensor4D;
}

/** dy * (y > 0) for y = relu(z): relu's gradient read from its output (y > 0 exactly where z > 0). */
function reluGradFromOutput(dy: tf.Tensor, y: tf.Tensor): tf.Tensor {
  if (tf.getBackend() === FUSION_BACKEND && dy.dtype === "float32")
    return tf.engine().runKernel(RELU_GRAD_KERNEL, { dy, x: y }) as tf.Tensor;
  return tf.mul(dy, tf.step(y));
}

/**
 * relu(conv2d(x, filter) + bias) as one op, and with `maxPool` = k the k x k max-pool after it (fusionkit backend, a
 * bias per channel): the forward pass is a single FusedConv2D with the relu applied while the output is in cache
 * (tfjs would run the conv, then a Relu pass, under a tape), or the conv-relu-pool kernel, which also returns each
 * window's winner; the backward pass masks dy by the saved output (or routes it to the winners) once for the filter,
 * bias and (unless `inputGradient` is false, when x is a constant) input gradients.
 */
function convRelu(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor | undefined,
  strides: number | [number, number],
  pad: "same" | "valid" | number,
  inputGradient: boolean,
  maxPool?: number,
): tf.Tensor4D {
  const attrs = { strides, pad, dataFormat: "NHWC", dilations: 1 };
  const run = tf.customGrad(((...args: tf.Tensor[]) => {
    const xs = (inputGradient ? args[0] : x) as tf.Tensor4D;
    const f = args[inputGradient ? 1 : 0] as tf.Tensor4D;
    const b = bias === undefined ? undefined : args[inputGradient ? 2 : 1];
    const save = args.at(-1) as unknown as (ts: tf.Tensor[]) => void;
    const inputs: tf.NamedTensorMap = { x: xs, filter: f };
    if (b !== undefined) inputs.bias = b;
    let y: tf.Tensor4D;
    if (maxPool === undefined) {
      y = tf.engine().runKernel("FusedConv2D", inputs, {
        ...attrs,
        activation: "relu",
      } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
    } else {
      const pooled = { ...attrs, poolSize: maxPool, withCodes: true };
      const [p, codes] = tf
        .engine()
        .runKernel(CONV_RELU_MAX_POOL_KERNEL, inputs, pooled as unknown as tf.NamedAttrMap) as tf.Tensor4D[];
      y = p;
      save([xs, f, codes]);
    }
    // tfjs disposes the forward pass's intermediates before backprop: whatever the gradient reads must be saved
    if (maxPool === undefined) save([xs, f, y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, f, yOrCodes] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
        let dz: tf.Tensor;
        let db: tf.Tensor | undefined;
        if (maxPool !== undefined) {
          const outShape = tf.backend_util.computeConv2DInfo(xs.shape, f.shape, strides, 1, pad).outShape;
          [dz, db] = tf.engine().runKernel(CONV_RELU_MAX_POOL_GRAD_KERNEL, { dy, codes: yOrCodes }, {
            outShape,
            poolSize: maxPool,
          } as unknown as tf.NamedAttrMap) as tf.Tensor[];
          db = tf.reshape(db, (b as tf.Tensor).shape);
        } else if (
          b !== undefined &&
          b.size === yOrCodes.shape[3] &&
          tf.getBackend() === FUSION_BACKEND &&
          dy.dtype === "float32"
        ) {
          if (!inputGradient) {
            // the relu mask, the bias gradient and the filter gradient as one kernel (no full-size dz)
            const [dw, dbias] = tf.engine().runKernel(RELU_FILTER_GRAD_KERNEL, { x: xs, dy, y: yOrCodes }, {
              ...attrs,
              filterShape: f.shape,
            } as unknown as tf.NamedAttrMap) as tf.Tensor[];
            return [dw, tf.reshape(dbias, b.shape)];
          }
          [dz, db] = tf.engine().runKernel(RELU_GRAD_BIAS_KERNEL, { dy, y: yOrCodes }) as tf.Tensor[];
          db = tf.reshape(db, b.shape);
        } else {
          dz = reluGradFromOutput(dy, yOrCodes);
          if (b !== undefined) db = tf.reshape(tf.sum(dz, [0, 1, 2]), b.shape);
        }
        const grads: tf.Tensor[] = [];
        if (inputGradient)
          grads.push(
            tf.engine().runKernel("Conv2DBackpropInput", { dy: dz, filter: f }, {
              ...attrs,
              inputShape: xs.shape,
            } as unknown as tf.NamedAttrMap) as tf.Tensor,
          );
        grads.push(
          tf.engine().runKernel("Conv2DBackpropFilter", { x: xs, dy: dz }, {
            ...attrs,
            filterShape: f.shape,
          } as unknown as tf.NamedAttrMap) as tf.Tensor,
        );
        if (db !== undefined) grads.push(db);
        return grads;
      },
    };
  }) as unknown as CustomGradientFunc);
  const inputs: tf.Tensor[] = inputGradient ? [x, filter] : [filter];
  if (bias !== undefined) inputs.push(bias);
  return run(...inputs) as tf.Tensor4D;
}

/** conv2d + bias whose gradient covers the filter and bias only (x is treated as a constant). */
function convNoInputGrad(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor | undefined,
  strides: number | [number, number],
  pad: "same" | "valid" | number,
): tf.Tensor4D {
  // x is saved, not captured: tfjs disposes the forward pass's intermediates (x may be one) before backprop
  const filterGrad = (xs: tf.Tensor, dy: tf.Tensor) =>
    tf.engine().runKernel("Conv2DBackpropFilter", { x: xs, dy }, {
      strides,
      pad,
      dataFormat: "NHWC",
      filterShape: filter.shape,
    } as unknown as tf.NamedAttrMap) as tf.Tensor;
  type Save = (ts: tf.Tensor[]) => void;
  if (bias === undefined) {
    const run = tf.customGrad(((f: tf.Tensor, save: Save) => {
      save([x]);
      return {
        value: tf.conv2d(x, f as tf.Tensor4D, strides, pad),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => filterGrad(saved[0], dy),
      };
    }) as unknown as CustomGradientFunc);
    return run(filter) as tf.Tensor4D;
  }
  const run = tf.customGrad(((f: tf.Tensor, b: tf.Tensor, save: Save) => {
    save([x]);
    return {
      value: tf.fused.conv2d({ x, filter: f as tf.Tensor4D, strides, pad, bias: b }),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
        filterGrad(saved[0], dy),
        tf.reshape(tf.sum(dy, [0, 1, 2]), b.shape),
      ],
    };
  }) as unknown as CustomGradientFunc);
  return run(filter, bias) as tf.Tensor4D;
}

const useGeluKernels = (x: tf.Tensor) => tf.getBackend() === FUSION_BACKEND && x.dtype === "float32";

/**
 * GELU, exact (erf) form as PyTorch's default: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), with its gradient
 * Phi(x) + x phi(x). tfjs 4.22 has no Gelu op: on fusionkit each direction is one fused kernel, elsewhere composed ops.
 */
export function gelu<T extends tf.Tensor>(x: T): T {
  const run = tf.customGrad(((xs: tf.Tensor, save: (ts: tf.Tensor[]) => void) => {
    save([xs]);
    const value = useGeluKernels(xs)
      ? (tf.engine().runKernel(GELU_KERNEL, { x: xs }) as tf.Tensor)
      : tf.tidy(() => tf.mul(tf.mul(xs, 0.5), tf.add(1, tf.erf(tf.mul(xs, Math.SQRT1_2)))));
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const v = saved[0];
        if (useGeluKernels(v) && dy.dtype === "float32")
          return tf.engine().runKernel(GELU_GRAD_KERNEL, { dy, x: v }) as tf.Tensor;
        return tf.tidy(() => {
          const cdf = tf.mul(0.5, tf.add(1, tf.erf(tf.mul(v, Math.SQRT1_2))));
          const pdf = tf.mul(1 / Math.sqrt(2 * Math.PI), tf.exp(tf.mul(tf.square(v), -0.5)));
          return tf.mul(dy, tf.add(cdf, tf.mul(v, pdf)));
        });
      },
    };
  }) as unknown as CustomGradientFunc);
  return run(x) as T;
}
