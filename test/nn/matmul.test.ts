import { describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { agrees, randn, sizeOf, withGrads } from "./compare.js";

// Broadcast batch dims are checked on values only: tfjs 4.22's BatchMatMul gradient does not sum the broadcast dims
// back (it throws a shape error on every backend, cpu included).
const CASES: { a: number[]; b: number[]; ta: boolean; tb: boolean; grad?: false }[] = [
  { a: [7, 5], b: [5, 3], ta: false, tb: false },
  { a: [5, 7], b: [5, 3], ta: true, tb: false },
  { a: [7, 5], b: [3, 5], ta: false, tb: true },
  { a: [5, 7], b: [3, 5], ta: true, tb: true },
  { a: [64, 100], b: [100, 33], ta: false, tb: false },
  { a: [3, 4, 6], b: [3, 6, 2], ta: false, tb: false },
  { a: [2, 3, 6, 4], b: [2, 3, 2, 6], ta: true, tb: true },
  { a: [4, 6, 5], b: [5, 3], ta: false, tb: false, grad: false }, // rank-2 b broadcast over a's batch
  { a: [6, 5], b: [4, 5, 3], ta: false, tb: false, grad: false }, // rank-2 a broadcast over b's batch
  { a: [1, 6, 5], b: [3, 5, 2], ta: false, tb: false, grad: false },
  { a: [1, 1], b: [1, 1], ta: false, tb: false },
];

describe("BatchMatMul", () => {
  for (const [i, c] of CASES.entries()) {
    it(`${c.a} x ${c.b} transposeA=${c.ta} transposeB=${c.tb}`, async () => {
      const a = randn(sizeOf(c.a), i + 1);
      const b = randn(sizeOf(c.b), i + 101);
      if (c.grad === false) {
        await agrees(`matmul ${i}`, () => tf.matMul(tf.tensor(a, c.a), tf.tensor(b, c.b), c.ta, c.tb));
        return;
      }
      await agrees(`matmul ${i}`, () =>
        withGrads(
          (a, b) => tf.matMul(a, b, c.ta, c.tb),
          [
            [a, c.a],
            [b, c.b],
          ],
        ),
      );
    });
  }
});

describe("_FusedMatMul", () => {
  const acts = ["linear", "relu", "relu6", "elu", "leakyrelu", "sigmoid"] as const;
  for (const [i, activation] of acts.entries()) {
    for (const [ta, tb] of [
      [false, false],
      [true, true],
    ]) {
      it(`bias + ${activation}, transposeA=${ta} transposeB=${tb}: value and gradients`, async () => {
        const m = 9;
        const k = 13;
        const n = 6;
        const aShape = ta ? [k, m] : [m, k];
        const bShape = tb ? [n, k] : [k, n];
        await agrees(`fused ${activation}`, () =>
          withGrads(
            (a, b, bias) => tf.fused.matMul({ a, b, transposeA: ta, transposeB: tb, bias, activation }),
            [
              [randn(m * k, 3 + i), aShape],
              [randn(k * n, 7 + i), bShape],
              [randn(n, 11 + i), [n]],
            ],
          ),
        );
      });
    }
  }
  it("batched with a scalar bias and no activation", async () => {
    await agrees("fused batched", () =>
      withGrads(
        (a, b, bias) => tf.fused.matMul({ a, b, bias }),
        [
          [randn(2 * 4 * 5, 1), [2, 4, 5]],
          [randn(2 * 5 * 3, 2), [2, 5, 3]],
          [randn(1, 3), [1]],
        ],
      ),
    );
  });
  it("a bias made by gather (wasm stores it with a stale 4-d shape) and by reshape", async () => {
    const perm = [2, 0, 1];
    await agrees("fused gathered bias", () => {
      const a = tf.tensor(randn(4 * 5, 5), [4, 5]);
      const b = tf.tensor(randn(5 * 3, 6), [5, 3]);
      const bias = tf.tensor(randn(3, 7), [3]);
      const gathered = tf.gather(bias, tf.tensor1d(perm, "int32"));
      const reshaped = tf.reshape(tf.tensor(randn(3, 8), [1, 3]), [3]);
      return [
        tf.fused.matMul({ a, b, bias: gathered, activation: "relu" }),
        tf.fused.matMul({ a, b, bias: reshaped }),
        tf.fused.matMul({ a, b, bias: tf.reshape(gathered, [1, 3]) }),
      ];
    });
  });
  it("a bias with one value per row falls back and still agrees", async () => {
    await agrees("fused column bias", () =>
      withGrads(
        (a, b, bias) => tf.fused.matMul({ a, b, bias, activation: "relu" }),
        [
          [randn(4 * 5, 1), [4, 5]],
          [randn(5 * 4, 2), [5, 4]],
          [randn(4, 3), [4, 1]],
        ],
      ),
    );
  });
});
