import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadTaskSplit, selectPerClass } from "../../src/data/splits.js";
import { FusionError } from "../../src/errors.js";

describe("selectPerClass (few-shot subsets)", () => {
  const split = loadTaskSplit("coarse4", "train", { limit: 3000 });

  it("takes exactly k examples of each class, copied from the split's rows", () => {
    const s = selectPerClass(split, 7, 1);
    assert.equal(s.count, 4 * 7);
    const counts = new Array(4).fill(0);
    for (const y of s.y) counts[y]++;
    assert.deepEqual(counts, [7, 7, 7, 7]);
    const px = split.rows * split.cols;
    // Every selected row is one of the split's rows with the same label.
    for (let k = 0; k < s.count; k++) {
      const row = s.x.subarray(k * px, (k + 1) * px);
      let found = false;
      for (let i = 0; i < split.count && !found; i++)
        if (split.y[i] === s.y[k] && split.x.subarray(i * px, (i + 1) * px).every((v, j) => v === row[j])) found = true;
      assert.ok(found, `row ${k} is not a row of the split`);
    }
  });

  it("is deterministic per seed and differs between seeds", () => {
    assert.deepEqual(selectPerClass(split, 5, 3).x, selectPerClass(split, 5, 3).x);
    assert.notDeepEqual(selectPerClass(split, 5, 3).x, selectPerClass(split, 5, 4).x);
  });

  it("rejects a non-positive count", () => {
    assert.throws(() => selectPerClass(split, 0, 0), FusionError);
  });
});
