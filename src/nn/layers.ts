/**
 * Dense and conv2d layers (bias + activation) that take the fastest path tfjs allows in each mode. Under a gradient
 * tape tfjs only fuses linear activations, so `tf.fused.conv2d(..., activation: "relu")` falls back to three kernels
 * (product, bias add, relu); here training runs the fused product-with-bias and then the activation (two), and
 * inference runs one fused kernel.
 */
import * as tf from "@tensorflow/tfjs";

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
  if (!recording() || activation === "linear") return tf.fused.conv2d({ ...base, activation, leakyreluAlpha });
  return activate(tf.fused.conv2d(base), activation, leakyreluAlpha) as tf.Tensor4D;
}
