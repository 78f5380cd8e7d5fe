/**
 * Dense and conv2d layers (bias + activation) that take the fastest path tfjs allows in each mode. Under a gradient
 * tape tfjs only fuses linear activations, so `tf.fused.conv2d(..., activation: "relu")` falls back to three kernels
 * (product, bias add, relu); here training runs the fused product-with-bias and then the activation (two), and
 * inference runs one fused kernel.
 */
import * as tf from "@tensorflow/tfjs";

type CustomGradientFunc = Parameters<typeof tf.customGrad>[0];

export type Activation = "linear" | "relu" | "relu6" | "elu" | "sigmoid" | "leakyrelu";

function recording(): boolean {
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
}

/** NHWC conv2d with an HWIO filter, plus bias and activation. */
export function conv2d(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias?: tf.Tensor,
  options: Conv2DOptions = {},
): tf.Tensor4D {
  const { strides = 1, pad = "valid", dilations = 1, activation = "linear", leakyreluAlpha = 0.2 } = options;
  const base = { x, filter, strides, pad, dilations, bias };
  if (!recording()) return tf.fused.conv2d({ ...base, activation, leakyreluAlpha });
  const undilated = dilations === 1 || (Array.isArray(dilations) && dilations[0] === 1 && dilations[1] === 1);
  const y =
    options.inputGradient === false && undilated
      ? convNoInputGrad(x, filter, bias, strides, pad)
      : tf.fused.conv2d(base);
  return activate(y, activation, leakyreluAlpha) as tf.Tensor4D;
}

/** conv2d + bias whose gradient covers the filter and bias only (x is treated as a constant). */
function convNoInputGrad(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor | undefined,
  strides: number | [number, number],
  pad: "same" | "valid" | number,
): tf.Tensor4D {
  const filterGrad = (dy: tf.Tensor) =>
    tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, {
      strides,
      pad,
      dataFormat: "NHWC",
      filterShape: filter.shape,
    } as unknown as tf.NamedAttrMap) as tf.Tensor;
  if (bias === undefined) {
    const run = tf.customGrad(((f: tf.Tensor) => ({
      value: tf.conv2d(x, f as tf.Tensor4D, strides, pad),
      gradFunc: (dy: tf.Tensor) => filterGrad(dy),
    })) as unknown as CustomGradientFunc);
    return run(filter) as tf.Tensor4D;
  }
  const run = tf.customGrad(((f: tf.Tensor, b: tf.Tensor) => ({
    value: tf.fused.conv2d({ x, filter: f as tf.Tensor4D, strides, pad, bias: b }),
    gradFunc: (dy: tf.Tensor) => [filterGrad(dy), tf.reshape(tf.sum(dy, [0, 1, 2]), b.shape)],
  })) as unknown as CustomGradientFunc);
  return run(filter, bias) as tf.Tensor4D;
}
