import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FMNIST, loadFashionMnist, loadTaskSplit, NORMALISE, trainValPartition } from "../../src/data/index.js";
import { FusionError } from "../../src/errors.js";

function sortedUnique(a: Uint32Array): boolean {
  for (let i = 1; i < a.length; i++) if (a[i]! <= a[i - 1]!) return false;
  return true;
}

describe("train / val partition", () => {
  it("is disjoint, covers the training set and is sorted", () => {
    const { train, val } = trainValPartition(60000, 5000, 0);
    assert.equal(val.length, 5000);
    assert.equal(train.length, 55000);
    assert.ok(sortedUnique(train) && sortedUnique(val));
    const seen = new Uint8Array(60000);
    for (const i of train) seen[i]! += 1;
    for (const i of val) seen[i]! += 1;
    assert.ok(
      seen.every((v) => v === 1),
      "every index exactly once",
    );
  });

  it("is deterministic (pinned) and depends on the seed", () => {
    // Pinned: changing it changes every benchmark's validation set.
    assert.deepEqual(
      Array.from(trainValPartition(60000, 5000, 0).val.subarray(0, 8)),
      [13, 19, 26, 28, 39, 46, 53, 57],
    );
    const a = trainValPartition(60000, 5000, 1).val;
    const b = trainValPartition(60000, 5000, 2).val;
    let common = 0;
    const inA = new Set(a);
    for (const i of b) if (inA.has(i)) common++;
    assert.ok(common > 200 && common < 700, `about 5000 * 5000 / 60000 = 417 in common, got ${common}`);
    const small = trainValPartition(60000, 1000, 0);
    assert.equal(small.val.length, 1000);
  });

  it("validates its arguments", () => {
    assert.throws(() => trainValPartition(100, 100, 0), /key 'valSize': must be an integer in \[0, 99\], got 100/);
    assert.throws(() => trainValPartition(100, 10, -1), /key 'seed'/);
    assert.throws(() => trainValPartition(100, 10, 0.5), /key 'seed'/);
  });
});

describe("loadTaskSplit", () => {
  it("carves val out of train, disjoint across tasks, deterministic", () => {
    const train = loadTaskSplit("fmnist", "train");
    const val = loadTaskSplit("fmnist", "val");
    const test = loadTaskSplit(FMNIST, "test");
    assert.deepEqual([train.count, val.count, test.count], [55000, 5000, 10000]);
    assert.equal(train.x.length, 55000 * 784);
    assert.deepEqual(
      [train.rows, train.cols, train.numClasses, train.task, train.split],
      [28, 28, 10, "fmnist", "train"],
    );
    const again = loadTaskSplit("fmnist", "val");
    assert.notEqual(again.x, val.x, "fresh arrays per call");
    assert.deepEqual(again.y, val.y);
    assert.deepEqual(again.x, val.x);
    const other = loadTaskSplit("fmnist", "val", { seed: 1 });
    assert.notDeepEqual(other.y, val.y);
  });

  it("rows are the normalised raw images at the partition's indices", () => {
    const raw = loadFashionMnist("train");
    const { train: trainIdx, val: valIdx } = trainValPartition(60000, 5000, 0);
    const val = loadTaskSplit("fmnist", "val");
    const train = loadTaskSplit("fmnist", "train", { limit: 50 });
    for (const [split, idx] of [
      [val, valIdx],
      [train, trainIdx],
    ] as const) {
      for (const i of [0, 1, 17, split.count - 1]) {
        const r = idx[i]!;
        assert.equal(split.y[i], raw.labels[r]);
        const expected = Array.from(raw.images.subarray(r * 784, (r + 1) * 784), (p) => NORMALISE[p]);
        assert.deepEqual(Array.from(split.x.subarray(i * 784, (i + 1) * 784)), expected);
      }
    }
  });

  it("normalises to about zero mean and unit variance", () => {
    assert.ok(Math.abs(NORMALISE[0]! - (0 - 0.286) / 0.353) < 1e-6);
    assert.ok(Math.abs(NORMALISE[255]! - (1 - 0.286) / 0.353) < 1e-6);
    const { x } = loadTaskSplit("fmnist", "train");
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < x.length; i++) {
      s += x[i]!;
      s2 += x[i]! * x[i]!;
    }
    const mean = s / x.length;
    const std = Math.sqrt(s2 / x.length - mean * mean);
    assert.ok(Math.abs(mean) < 0.01, `mean ${mean}`);
    assert.ok(Math.abs(std - 1) < 0.01, `std ${std}`);
  });

  it("drops excluded classes; train + val of a 5-class task is 30000", () => {
    const train = loadTaskSplit("last5", "train");
    const val = loadTaskSplit("last5", "val");
    assert.equal(train.count + val.count, 30000);
    assert.ok(val.count > 2300 && val.count < 2700, String(val.count));
    assert.ok(train.y.every((y) => y >= 0 && y < 5));
  });

  it("limit takes the first N examples after filtering; valSize moves examples", () => {
    const full = loadTaskSplit("first5", "test");
    const few = loadTaskSplit("first5", "test", { limit: 7 });
    assert.equal(few.count, 7);
    assert.deepEqual(few.y, full.y.subarray(0, 7));
    assert.deepEqual(few.x, full.x.subarray(0, 7 * 784));
    assert.equal(loadTaskSplit("first5", "test", { limit: 1e6 }).count, 5000);
    assert.equal(loadTaskSplit("fmnist", "val", { valSize: 1000 }).count, 1000);
    assert.equal(loadTaskSplit("fmnist", "train", { valSize: 1000, limit: 3 }).count, 3);
    assert.equal(loadTaskSplit("fmnist", "val", { valSize: 0 }).count, 0);
  });

  it("rejects bad options with the key named", () => {
    const bad = (options: object, key: string) =>
      assert.throws(
        () => loadTaskSplit("fmnist", "val", options),
        (e: unknown) => e instanceof FusionError && e.code === "INVALID_ARGUMENT" && e.key === key,
      );
    bad({ valSize: -1 }, "valSize");
    bad({ valSize: 60000 }, "valSize");
    bad({ valSize: 2.5 }, "valSize");
    bad({ seed: -3 }, "seed");
    bad({ limit: 0 }, "limit");
    bad({ limit: "10" }, "limit");
    assert.throws(() => loadTaskSplit("fmnist", "dev" as "val"), /split must be 'train', 'val' or 'test'/);
    assert.throws(() => loadTaskSplit("fminst", "val"), /did you mean 'fmnist'/);
  });
});
