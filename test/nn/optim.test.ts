import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { adam } from "../../src/nn/index.js";
import { agrees, backendUnderTest, randn } from "./compare.js";

describe("adam()", () => {
  it("five steps on a least-squares problem give tf.train.adam's values (cpu)", async () => {
    await backendUnderTest();
    const run = (make: () => tf.Optimizer) => {
      const w = tf.variable(tf.tensor(randn(6 * 3, 1), [6, 3]));
      const b = tf.variable(tf.zeros([3]));
      const x = tf.tensor(randn(8 * 6, 2), [8, 6]);
      const y = tf.tensor(randn(8 * 3, 3), [8, 3]);
      const opt = make();
      for (let i = 0; i < 5; i++)
        opt.minimize(() => tf.mean(tf.square(tf.sub(tf.add(tf.matMul(x, w), b), y))) as tf.Scalar, false, [w, b]);
      const out = [tf.clone(w), tf.clone(b)];
      opt.dispose();
      tf.dispose([w, b, x, y]);
      return out;
    };
    await agrees("adam", () => run(() => (tf.getBackend() === "cpu" ? tf.train.adam(0.05) : adam(0.05))), 1e-4);
  });
  it("leaves no tensors behind across steps, and dispose() frees its moments", async () => {
    await backendUnderTest();
    const w = tf.variable(tf.tensor(randn(10, 4), [10]));
    const opt = adam(0.01);
    const loss = () => tf.sum(tf.square(w)) as tf.Scalar;
    opt.minimize(loss);
    const after1 = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) opt.minimize(loss);
    assert.equal(tf.memory().numTensors, after1);
    opt.dispose();
    w.dispose();
  });
});

describe("fused Adam updates in place only when nobody else can see it", () => {
  it("clones and dataSync'd arrays of a variable keep their values across steps", async () => {
    await backendUnderTest();
    const w = tf.variable(tf.tensor(randn(64, 7), [64]));
    const opt = adam(0.1);
    const loss = () => tf.sum(tf.square(tf.sub(w, 3))) as tf.Scalar;
    for (let i = 0; i < 3; i++) opt.minimize(loss);
    const snapshot = tf.clone(w);
    const expected = Float32Array.from(w.dataSync());
    const read = w.dataSync();
    for (let i = 0; i < 3; i++) opt.minimize(loss);
    assert.deepEqual(snapshot.dataSync(), expected);
    assert.deepEqual(read, expected);
    assert.notDeepEqual(w.dataSync(), expected);
    tf.dispose([w, snapshot]);
    opt.dispose();
  });
});
