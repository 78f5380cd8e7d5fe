import assert from "node:assert/strict";
import { test } from "node:test";
import { learningRateAt } from "../../src/train/schedule.js";

test("warmup rises linearly to the peak, then cosine decays to minLr", () => {
  const o = { kind: "cosine" as const, lr: 1, totalSteps: 110, warmupSteps: 10, minLr: 0.1 };
  assert.equal(learningRateAt(o, 0), 0.1);
  assert.equal(learningRateAt(o, 4), 0.5);
  assert.equal(learningRateAt(o, 9), 1);
  assert.equal(learningRateAt(o, 10), 1);
  assert.ok(Math.abs(learningRateAt(o, 60) - 0.55) < 1e-12, "halfway through the decay: midpoint of lr and minLr");
  assert.ok(Math.abs(learningRateAt(o, 110) - 0.1) < 1e-12);
  for (let s = 11; s < 110; s++) assert.ok(learningRateAt(o, s) < learningRateAt(o, s - 1), `decreasing at ${s}`);
});

test("constant schedule holds the peak after warmup", () => {
  const o = { kind: "constant" as const, lr: 0.3, totalSteps: 50, warmupSteps: 3 };
  assert.ok(Math.abs(learningRateAt(o, 1) - 0.2) < 1e-12);
  assert.equal(learningRateAt(o, 3), 0.3);
  assert.equal(learningRateAt(o, 49), 0.3);
});
