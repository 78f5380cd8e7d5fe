import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { loadTaskSplit } from "../../src/data/splits.js";
import { FusionError } from "../../src/errors.js";
import { initHead } from "../../src/nn/models/head.js";
import { mlp } from "../../src/nn/models/mlp.js";
import { resnet20 } from "../../src/nn/models/resnet.js";
import type { Params } from "../../src/nn/models/types.js";
import { initNN } from "../../src/nn/select.js";
import { type TrainConfig, train } from "../../src/train/loop.js";

const bytesOf = (p: Params) =>
  Object.keys(p)
    .sort()
    .map((k) => Buffer.from((p[k]!.dataSync() as Float32Array).buffer).toString("base64"))
    .join("|");
const dispose = (...ps: Params[]) => {
  for (const p of ps) tf.dispose(Object.values(p));
};

const cfg = (over: Partial<TrainConfig> = {}): TrainConfig => ({
  steps: 12,
  batchSize: 32,
  seed: 3,
  optimizer: { name: "adamw", weightDecay: 0.01 },
  lr: 2e-3,
  schedule: "cosine",
  warmupSteps: 2,
  augmentShift: 1,
  trainBackbone: true,
  trainHead: true,
  ...over,
});

describe("train", () => {
  before(async () => {
    await initNN({ log: null });
  });
  const model = mlp({ hidden: [32] });
  const data = () => loadTaskSplit("fmnist", "train", { limit: 256 });

  it("is deterministic: same seed, identical weights; another seed differs", () => {
    const d = data();
    const runs = [3, 3, 4].map((seed) => {
      const b = model.init(0);
      const h = initHead(model.featureDim, 10, 1);
      const r = train({ model, backbone: b, head: h, data: d, config: cfg({ seed }) });
      const s = bytesOf(r.backbone) + bytesOf(r.head);
      dispose(b, h, r.backbone, r.head);
      return s;
    });
    assert.equal(runs[0], runs[1]);
    assert.notEqual(runs[0], runs[2]);
  });

  it("leaves frozen parts and the inputs untouched, and leaks no tensors", () => {
    const d = data();
    const b = model.init(0);
    const h = initHead(model.featureDim, 10, 1);
    const before = [bytesOf(b), bytesOf(h)];
    const n0 = tf.memory().numTensors;
    const r = train({ model, backbone: b, head: h, data: d, config: cfg({ trainHead: false }) });
    assert.equal(bytesOf(r.head), before[1], "frozen head changed");
    assert.notEqual(bytesOf(r.backbone), before[0], "trained backbone did not change");
    assert.deepEqual([bytesOf(b), bytesOf(h)], before, "inputs were modified");
    dispose(r.backbone, r.head);
    assert.equal(tf.memory().numTensors, n0, "tensors leaked");
    const r2 = train({ model, backbone: b, head: h, data: d, config: cfg({ trainBackbone: false }) });
    assert.equal(bytesOf(r2.backbone), before[0], "frozen backbone changed");
    dispose(b, h, r2.backbone, r2.head);
  });

  it("lowers the loss with every optimizer", () => {
    const d = data();
    for (const name of ["sgd", "adam", "adamw"] as const) {
      const b = model.init(0);
      const h = initHead(model.featureDim, 10, 1);
      const r = train({
        model,
        backbone: b,
        head: h,
        data: d,
        config: cfg({ steps: 40, optimizer: { name }, lr: name === "sgd" ? 0.05 : 2e-3, augmentShift: 0 }),
      });
      assert.ok(r.lossCurve.at(-1)! < r.lossCurve[0]! * 0.8, `${name}: ${r.lossCurve.join(", ")}`);
      dispose(b, h, r.backbone, r.head);
    }
  });

  it("updates BatchNorm running statistics while training", () => {
    const m = resnet20({ width: 1, norm: "batchnorm", blocks: 1 });
    const d = loadTaskSplit("fmnist", "train", { limit: 64 });
    const b = m.init(0);
    const h = initHead(m.featureDim, 10, 1);
    const r = train({ model: m, backbone: b, head: h, data: d, config: cfg({ steps: 2, batchSize: 16 }) });
    const name = m.params.find((p) => p.name.endsWith("running_mean"))!.name;
    assert.notDeepEqual(Array.from(r.backbone[name]!.dataSync()), Array.from(b[name]!.dataSync()));
    dispose(b, h, r.backbone, r.head);
  });

  it("rejects bad budgets with a typed error", () => {
    const d = data();
    const b = model.init(0);
    const h = initHead(model.featureDim, 10, 1);
    for (const [over, key] of [
      [{ steps: 0 }, "steps"],
      [{ lr: -1 }, "lr"],
      [{ batchSize: 1.5 }, "batch-size"],
      [{ trainBackbone: false, trainHead: false }, "train"],
    ] as const) {
      assert.throws(
        () => train({ model, backbone: b, head: h, data: d, config: cfg(over) }),
        (e: unknown) => e instanceof FusionError && e.key === key,
      );
    }
    dispose(b, h);
  });
});
