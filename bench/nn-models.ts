/**
 * Benchmark models for bench/nn.ts, written functionally over tfjs variables with nn's dense / conv2d layers (the
 * same shapes as bench/nn-torch.py):
 * MLP 784-512-512-512-10 and a small CNN (conv 3x3x32, conv 3x3x64, max-pool 2x2, dense 10) on 28x28x1 inputs.
 */
import * as tf from "@tensorflow/tfjs";
import { conv2d, dense } from "../src/nn/index.js";

export interface BenchModel {
  name: string;
  params: tf.Variable[];
  forward(x: tf.Tensor): tf.Tensor;
  inputShape: number[];
}

function glorot(shape: number[], fanIn: number, fanOut: number, seed: number): tf.Variable {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  return tf.variable(tf.randomUniform(shape, -limit, limit, "float32", seed));
}

export function mlp(seed = 1): BenchModel {
  const sizes = [784, 512, 512, 512, 10];
  const ws: tf.Variable[] = [];
  const bs: tf.Variable[] = [];
  for (let i = 0; i + 1 < sizes.length; i++) {
    ws.push(glorot([sizes[i], sizes[i + 1]], sizes[i], sizes[i + 1], seed + i));
    bs.push(tf.variable(tf.zeros([sizes[i + 1]])));
  }
  return {
    name: "MLP 784-512-512-512-10",
    params: [...ws, ...bs],
    inputShape: [784],
    forward(x) {
      let h = x;
      for (let i = 0; i < ws.length; i++) {
        const activation = i + 1 < ws.length ? "relu" : "linear";
        h = dense(h, ws[i], bs[i], activation);
      }
      return h;
    },
  };
}

export function cnn(seed = 1): BenchModel {
  const k1 = glorot([3, 3, 1, 32], 9, 9 * 32, seed);
  const b1 = tf.variable(tf.zeros([32]));
  const k2 = glorot([3, 3, 32, 64], 9 * 32, 9 * 64, seed + 1);
  const b2 = tf.variable(tf.zeros([64]));
  const flat = 12 * 12 * 64;
  const w = glorot([flat, 10], flat, 10, seed + 2);
  const b = tf.variable(tf.zeros([10]));
  return {
    name: "CNN conv32-conv64-pool-dense10",
    params: [k1, b1, k2, b2, w, b],
    inputShape: [28, 28, 1],
    forward(x) {
      const h1 = conv2d(x as tf.Tensor4D, k1 as tf.Tensor as tf.Tensor4D, b1, {
        activation: "relu",
        inputGradient: false,
      });
      // conv + relu + 2x2 max-pool: one kernel in inference on the fusionkit backend, two ops otherwise
      const p = conv2d(h1, k2 as tf.Tensor as tf.Tensor4D, b2, { activation: "relu", maxPool: 2 });
      return dense(tf.reshape(p, [-1, flat]), w, b);
    },
  };
}

/** One Adam step on softmax cross-entropy; returns nothing, leaves no tensors behind. */
export function trainStep(model: BenchModel, opt: tf.Optimizer, x: tf.Tensor, y: tf.Tensor): void {
  const loss = opt.minimize(() => tf.losses.softmaxCrossEntropy(y, model.forward(x)) as tf.Scalar, true, model.params);
  loss?.dataSync();
  loss?.dispose();
}

/** Inputs and one-hot labels for a batch. */
export function batch(model: BenchModel, n: number, seed = 7): { x: tf.Tensor; y: tf.Tensor } {
  return tf.tidy(() => {
    const x = tf.randomNormal([n, ...model.inputShape], 0, 1, "float32", seed);
    const labels = tf.randomUniform([n], 0, 10, "int32", seed + 1);
    return { x, y: tf.oneHot(labels, 10).toFloat() };
  });
}
