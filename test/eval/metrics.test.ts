import assert from "node:assert/strict";
import { test } from "node:test";
import { accumulate, emptySums, finish } from "../../src/eval/metrics.js";

test("accuracy, cross-entropy and entropy against hand-computed values", () => {
  const sums = emptySums();
  // row 0: uniform over 2 classes, label 1 (argmax ties -> class 0: wrong); row 1: confident and right.
  accumulate(sums, Float32Array.from([0, 0, 10, -10]), Int32Array.from([1, 0]), 2);
  const m = finish(sums);
  assert.equal(m.count, 2);
  assert.equal(m.accuracy, 0.5);
  const p = 1 / (1 + Math.exp(-20));
  const ce1 = -Math.log(p);
  assert.ok(Math.abs(m.loss - (Math.log(2) + ce1) / 2) < 1e-9);
  const h1 = -(p * Math.log(p) + (1 - p) * Math.log(1 - p));
  assert.ok(Math.abs(m.entropy - (Math.log(2) + h1) / 2) < 1e-9);
});

test("large logits do not overflow", () => {
  const sums = emptySums();
  accumulate(sums, Float32Array.from([1000, 0, -1000]), Int32Array.from([2]), 3);
  const m = finish(sums);
  assert.ok(Number.isFinite(m.loss) && Math.abs(m.loss - 2000) < 1e-6);
  assert.equal(m.accuracy, 0);
});
