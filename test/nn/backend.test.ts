import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs";
import {
  adam,
  describeNNBackend,
  FUSION_BACKEND,
  type FusionBackend,
  fusionKernelNames,
  initNN,
} from "../../src/nn/index.js";
import { backendUnderTest, randn } from "./compare.js";

describe("backend selection", () => {
  it("initNN reports the active backend in one line", async () => {
    const name = await backendUnderTest();
    const info = await initNN({ log: null });
    assert.equal(info.backend, name);
    assert.equal(tf.getBackend(), name);
    assert.match(describeNNBackend(info), new RegExp(`^nn backend: ${name} \\((gemm [^;]+; )?tfjs 4\\.22`));
    if (!info.native) assert.match(describeNNBackend(info), /apt-get install libdnnl-dev libopenblas-dev/);
    if (name === FUSION_BACKEND) assert.match(describeNNBackend(info), /gemm (oneDNN|OpenBLAS)/);
    if (process.env.FUSIONKIT_BACKEND) assert.equal(name, process.env.FUSIONKIT_BACKEND);
  });
  it("the fusionkit backend overrides the hot kernels", async (t) => {
    if ((await backendUnderTest()) !== FUSION_BACKEND) return t.skip("fusionkit backend not selected");
    const names = fusionKernelNames();
    for (const k of [
      "BatchMatMul",
      "_FusedMatMul",
      "Conv2D",
      "Conv2DBackpropFilter",
      "Add",
      "Multiply",
      "Sum",
      "Softmax",
    ])
      assert.ok(names.includes(k), `${k} is not overridden`);
  });
});

describe("buffer pool", () => {
  it("values read by dataSync survive disposal and later kernels", async () => {
    await backendUnderTest();
    const a = tf.tensor(randn(1000, 1));
    const b = tf.tensor(randn(1000, 2));
    const c = tf.add(a, b);
    const seen = c.dataSync();
    const copy = Float32Array.from(seen);
    c.dispose();
    for (let i = 0; i < 5; i++) tf.mul(a, b).dispose();
    assert.deepEqual(seen, copy);
    tf.dispose([a, b]);
  });
  it("a tensor created from a caller's array never lends that array to the pool", async () => {
    await backendUnderTest();
    const mine = randn(512, 3);
    const copy = Float32Array.from(mine);
    tf.tensor(mine).dispose();
    for (let i = 0; i < 5; i++) tf.tidy(() => tf.square(tf.tensor(randn(512, 4))).dataSync());
    assert.deepEqual(mine, copy);
  });
  it("disposed outputs are recycled", async (t) => {
    if ((await backendUnderTest()) !== FUSION_BACKEND) return t.skip("fusionkit backend not selected");
    const be = tf.backend() as FusionBackend;
    const x = tf.tensor(randn(4096, 5));
    tf.square(x).dispose();
    assert.ok(be.pool.pooledBytes >= 4096 * 4);
    const before = be.pool.pooledBytes;
    const y = tf.square(x);
    assert.equal(be.pool.pooledBytes, before - 4096 * 4);
    tf.dispose([x, y]);
  });
  it("a view of a pooled buffer (a reshape, a slice) keeps it alive", async () => {
    await backendUnderTest();
    const x = tf.tensor(randn(64, 6), [8, 8]);
    const sq = tf.square(x);
    const row = tf.slice(sq, [2, 0], [1, 8]);
    const expected = Float32Array.from(sq.dataSync().subarray(16, 24));
    sq.dispose();
    for (let i = 0; i < 3; i++) tf.square(x).dispose();
    assert.deepEqual(row.dataSync(), expected);
    tf.dispose([x, row]);
  });
});

describe("training", () => {
  it("no tensor leaks: the count after 100 Adam steps equals the count after 1 (MLP and CNN)", async () => {
    await backendUnderTest();
    const w1 = tf.variable(tf.tensor(randn(20 * 16, 1, 0.2), [20, 16]));
    const b1 = tf.variable(tf.zeros([16]));
    const k = tf.variable(tf.tensor(randn(3 * 3 * 1 * 4, 2, 0.2), [3, 3, 1, 4]));
    const kb = tf.variable(tf.zeros([4]));
    const w2 = tf.variable(tf.tensor(randn(48 * 3, 3, 0.2), [48, 3]));
    const params = [w1, b1, k, kb, w2];
    const { conv2d } = await import("../../src/nn/index.js");
    const x = tf.tensor(randn(8 * 20, 4), [8, 20]);
    const img = tf.tensor(randn(8 * 6 * 6, 5), [8, 6, 6, 1]);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], "int32"), 3);
    const opt = adam(0.01);
    const losses: number[] = [];
    const step = () => {
      const loss = opt.minimize(
        () => {
          const h = tf.fused.matMul({ a: x, b: w1, bias: b1, activation: "relu" });
          const c = tf.fused.conv2d({
            x: img as tf.Tensor4D,
            filter: k as tf.Tensor as tf.Tensor4D,
            strides: 1,
            pad: "valid",
            bias: kb,
            activation: "relu",
          });
          const p = tf.reshape(tf.maxPool(c, 2, 2, "valid"), [8, 16]);
          // nn's conv2d with the pool fused (one op forward and one backward on fusionkit)
          const q = conv2d(img as tf.Tensor4D, k as tf.Tensor as tf.Tensor4D, kb, { activation: "relu", maxPool: 2 });
          const logits = tf.matMul(tf.concat([h, p, tf.reshape(q, [8, 16])], 1), w2);
          return tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar;
        },
        true,
        params,
      );
      losses.push(loss!.dataSync()[0]);
      loss!.dispose();
    };
    step();
    const after1 = tf.memory().numTensors;
    for (let i = 1; i < 100; i++) step();
    assert.equal(tf.memory().numTensors, after1);
    assert.ok(losses[99] < losses[0] * 0.5, `loss did not fall: ${losses[0]} -> ${losses[99]}`);
    tf.dispose([...params, x, img, y]);
    opt.dispose();
  });
});

describe("layers", () => {
  it("conv2d with inputGradient: false gives the same filter and bias gradients", async () => {
    const { conv2d } = await import("../../src/nn/index.js");
    const { agrees } = await import("./compare.js");
    // the fused relu-mask + filter-gradient kernel: in one arena chunk, over several chunks (K = 576), with an
    // output channel count that is not a multiple of 4 (the JS mask), and single-channel inputs
    const cases: {
      x: [number, number, number, number];
      f: [number, number, number, number];
      strides: number;
      pad: "valid" | "same";
    }[] = [
      { x: [2, 6, 6, 2], f: [3, 3, 2, 4], strides: 1, pad: "valid" },
      { x: [2, 6, 6, 2], f: [3, 3, 2, 4], strides: 2, pad: "same" },
      { x: [4, 30, 30, 64], f: [3, 3, 64, 8], strides: 1, pad: "valid" },
      { x: [2, 7, 7, 3], f: [3, 3, 3, 6], strides: 1, pad: "same" },
      // one input channel, 3 x 3, valid: the direct kernel, over two chunks that split an image (8 x 26 x 26 rows)
      { x: [8, 28, 28, 1], f: [3, 3, 1, 32], strides: 1, pad: "valid" },
      { x: [2, 9, 7, 1], f: [3, 3, 1, 8], strides: 1, pad: "valid" },
    ];
    for (const [i, { x: xs, f: fs, strides, pad }] of cases.entries()) {
      const x = randn(
        xs.reduce((p, d) => p * d, 1),
        1 + i,
      );
      const f = randn(
        fs.reduce((p, d) => p * d, 1),
        2 + i,
        0.2,
      );
      const b = randn(fs[3], 3 + i);
      await agrees(`conv2d no dx ${i}`, () => {
        const xt = tf.tensor4d(x, xs);
        const r = tf.tensor(randn(tf.conv2d(xt, tf.zeros(fs) as tf.Tensor4D, strides, pad).size, 4));
        const g = tf.grads((ft: tf.Tensor, bt: tf.Tensor) => {
          const y =
            tf.getBackend() === "cpu"
              ? tf.relu(tf.add(tf.conv2d(xt, ft as tf.Tensor4D, strides, pad), bt))
              : conv2d(xt, ft as tf.Tensor4D, bt, { strides, pad, activation: "relu", inputGradient: false });
          return tf.sum(tf.mul(tf.reshape(y, [-1]), r));
        });
        return g([tf.tensor4d(f, fs), tf.tensor1d(b)]);
      });
    }
  });
  it("dense and conv2d with bias + relu agree with tfjs cpu, value and gradients", async () => {
    const { conv2d, dense } = await import("../../src/nn/index.js");
    const { agrees, withGrads } = await import("./compare.js");
    await agrees("dense", () =>
      withGrads(
        (x, w, b) => dense(x, w, b, "relu"),
        [
          [randn(6 * 5, 1), [6, 5]],
          [randn(5 * 4, 2), [5, 4]],
          [randn(4, 3), [4]],
        ],
      ),
    );
    await agrees("conv2d", () =>
      withGrads(
        (x, f, b) => conv2d(x as tf.Tensor4D, f as tf.Tensor4D, b, { activation: "relu", pad: "same", strides: 2 }),
        [
          [randn(2 * 7 * 7 * 3, 4), [2, 7, 7, 3]],
          [randn(3 * 3 * 3 * 5, 5), [3, 3, 3, 5]],
          [randn(5, 6), [5]],
        ],
      ),
    );
  });
  it("stacked conv2d layers: the gradient of a layer whose input is the previous layer's output", async () => {
    // tfjs disposes forward intermediates before backprop; on wasm (copying clones) a captured input would be gone
    const { conv2d } = await import("../../src/nn/index.js");
    const { agrees, withGrads } = await import("./compare.js");
    for (const inputGradient of [false, true]) {
      await agrees(`conv stack, first layer inputGradient ${inputGradient}`, () => {
        const x = tf.tensor4d(randn(2 * 9 * 9 * 2, 7), [2, 9, 9, 2]);
        return withGrads(
          (f1, b1, f2, b2) => {
            const h = conv2d(x, f1 as tf.Tensor4D, b1, { activation: "relu", inputGradient });
            const h2 = conv2d(tf.mul(h, 1.5) as tf.Tensor4D, f2 as tf.Tensor4D, b2, { activation: "linear" });
            return conv2d(h2, f2 as tf.Tensor4D, b2, { activation: "relu", pad: "same" });
          },
          [
            [randn(3 * 3 * 2 * 4, 8), [3, 3, 2, 4]],
            [randn(4, 9), [4]],
            [randn(3 * 3 * 4 * 4, 10), [3, 3, 4, 4]],
            [randn(4, 11), [4]],
          ],
        );
      });
    }
  });
});
