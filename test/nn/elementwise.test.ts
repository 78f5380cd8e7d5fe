import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { agrees, backendUnderTest, randn, sizeOf, withGrads } from "./compare.js";

// Shape pairs: same shape, scalar either side, trailing-axis broadcasts either side, and a general broadcast that
// takes the cpu fallback.
const PAIRS: [number[], number[]][] = [
  [
    [4, 5],
    [4, 5],
  ],
  [[3, 4, 5], []],
  [[], [3, 4]],
  [[1], [6, 2]],
  [[8, 6], [6]],
  [
    [8, 6],
    [1, 6],
  ],
  [[6], [2, 3, 6]],
  [
    [2, 3, 4],
    [3, 4],
  ],
  [
    [4, 1],
    [1, 5],
  ],
  [
    [3, 4],
    [3, 1],
  ],
];

const BINARY: Record<string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor> = {
  add: tf.add,
  sub: tf.sub,
  mul: tf.mul,
  div: tf.div,
  maximum: tf.maximum,
  minimum: tf.minimum,
  pow: (a, b) => tf.pow(tf.abs(a), b),
  squaredDifference: tf.squaredDifference,
};

// tfjs 4.22's gradients of these ops do not reduce over broadcast dims (shape error on every backend): values only.
const NO_BROADCAST_GRAD = new Set(["maximum", "minimum", "squaredDifference"]);

describe("binary elementwise", () => {
  for (const [name, op] of Object.entries(BINARY)) {
    it(`${name}: value and gradients across broadcasts`, async () => {
      for (const [i, [sa, sb]] of PAIRS.entries()) {
        // keep divisors and pow bases away from 0 so gradients are well conditioned
        const a = randn(sizeOf(sa), 10 + i).map((v) => (name === "div" || name === "pow" ? v + Math.sign(v) + 0.5 : v));
        const b = randn(sizeOf(sb), 50 + i).map((v) => (name === "div" ? v + 3 * Math.sign(v) || 1 : v));
        if (NO_BROADCAST_GRAD.has(name) && sa.join() !== sb.join()) {
          await agrees(`${name} ${sa} ${sb}`, () => op(tf.tensor(a, sa), tf.tensor(b, sb)));
          continue;
        }
        await agrees(`${name} ${sa} ${sb}`, () =>
          withGrads(op, [
            [a, sa],
            [b, sb],
          ]),
        );
      }
    });
  }
  it("int32 inputs take the cpu path and agree", async () => {
    await agrees("int add", () =>
      tf.cast(tf.add(tf.tensor([1, 2, 3], [3], "int32"), tf.scalar(4, "int32")), "float32"),
    );
  });
});

const UNARY: Record<string, [(x: tf.Tensor) => tf.Tensor, (v: number) => number]> = {
  square: [tf.square, (v) => v],
  sqrt: [tf.sqrt, (v) => Math.abs(v) + 0.1],
  rsqrt: [tf.rsqrt, (v) => Math.abs(v) + 0.1],
  exp: [tf.exp, (v) => v],
  log: [tf.log, (v) => Math.abs(v) + 0.1],
  neg: [tf.neg, (v) => v],
  abs: [tf.abs, (v) => v],
  relu: [tf.relu, (v) => v],
  relu6: [tf.relu6, (v) => 4 * v],
  sigmoid: [tf.sigmoid, (v) => v],
  tanh: [tf.tanh, (v) => v],
  leakyRelu: [(x) => tf.leakyRelu(x, 0.1), (v) => v],
  step: [(x) => tf.step(x, 0.3), (v) => v],
};

describe("unary elementwise", () => {
  for (const [name, [op, domain]] of Object.entries(UNARY)) {
    it(`${name}: value and gradient`, async () => {
      for (const shape of [[], [7], [5, 9]]) {
        await agrees(`${name} ${shape}`, () => withGrads(op, [[randn(sizeOf(shape), 3).map(domain), shape]]));
      }
    });
  }
  it("addN of same-shape tensors (gradient accumulation)", async () => {
    await agrees("addN", () =>
      withGrads(
        (a, b) => tf.addN([a, b, a]),
        [
          [randn(12, 1), [3, 4]],
          [randn(12, 2), [3, 4]],
        ],
      ),
    );
  });
});

describe("reductions and softmax", () => {
  const cases: [number[], number | number[], boolean][] = [
    [[6, 7], 1, false],
    [[6, 7], -1, true],
    [[6, 7], 0, false],
    [[2, 3, 4], [1, 2], false],
    [[2, 3, 4], [0, 1], true],
    [[2, 3, 4], 1, false],
    [[2, 3, 4], [0, 1, 2], false],
    [[5], 0, false],
    [[4096, 16], 0, false], // a long column sum (BLAS sgemv on fusionkit)
  ];
  for (const [name, op] of Object.entries({ sum: tf.sum, mean: tf.mean, max: tf.max })) {
    it(`${name} along leading, trailing and middle axes: value and gradient`, async () => {
      for (const [i, [shape, axis, keep]] of cases.entries()) {
        await agrees(`${name} ${shape} ${axis}`, () =>
          withGrads((x) => op(x, axis, keep), [[randn(sizeOf(shape), 20 + i), shape]]),
        );
      }
    });
  }
  it("softmax and logSoftmax: value and gradient", async () => {
    for (const shape of [[5], [4, 10], [2, 3, 6]]) {
      await agrees(`softmax ${shape}`, () => withGrads((x) => tf.softmax(x), [[randn(sizeOf(shape), 4, 3), shape]]));
      await agrees(`logSoftmax ${shape}`, () =>
        withGrads((x) => tf.logSoftmax(x), [[randn(sizeOf(shape), 5, 3), shape]]),
      );
    }
  });
  it("softmax cross-entropy loss: value and gradient", async () => {
    const labels = tf.tidy(() => tf.oneHot(tf.tensor1d([1, 0, 3, 2], "int32"), 5));
    const l = labels.dataSync().slice();
    labels.dispose();
    await agrees("xent", () =>
      withGrads((x) => tf.losses.softmaxCrossEntropy(tf.tensor(l, [4, 5]), x), [[randn(20, 6, 2), [4, 5]]]),
    );
  });
});

describe("gelu (exact erf form)", () => {
  for (const [i, shape] of [[7], [3, 50], [2, 4, 5, 33]].entries()) {
    it(`value and gradient, shape ${shape}`, async () => {
      const { gelu } = await import("../../src/nn/layers.js");
      await agrees(`gelu ${shape}`, () => withGrads((x) => gelu(x), [[randn(sizeOf(shape), 70 + i, 3), shape]]));
    });
  }
  it("matches 0.5 x (1 + erf(x / sqrt 2)) at known points", async () => {
    const { gelu } = await import("../../src/nn/layers.js");
    await backendUnderTest();
    const got = gelu(tf.tensor1d([-3, -1, 0, 0.5, 2])).dataSync();
    // PyTorch's torch.nn.functional.gelu at the same points
    const want = [-0.0040497, -0.1586553, 0, 0.3457312, 1.9544997];
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) < 2e-6, `gelu(${i}): ${got[i]}`);
  });
});
