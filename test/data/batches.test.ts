import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  epochOrder,
  fillBatch,
  loadTaskSplit,
  NORMALISE,
  seededGenerator,
  type TaskSplit,
} from "../../src/data/index.js";
import { FusionError } from "../../src/errors.js";

function isPermutation(a: Uint32Array): boolean {
  const seen = new Uint8Array(a.length);
  for (const i of a) {
    if (i >= a.length || seen[i]) return false;
    seen[i] = 1;
  }
  return true;
}

/** A synthetic split of `count` 6x5 images with distinct random pixel values (so a shift can be identified). */
function synthetic(count: number): TaskSplit {
  const rows = 6;
  const cols = 5;
  const x = Float32Array.from({ length: count * rows * cols }, (_, i) => Math.sin(i * 12.9898) * 43758.5453);
  const y = Int32Array.from({ length: count }, (_, i) => (i * 7) % 3);
  return { task: "synthetic", split: "train", count, x, y, rows, cols, numClasses: 3 };
}

/** Reference shift: out[r][c] = img[r - dy][c - dx] inside, fill outside. */
function shifted(img: Float32Array, rows: number, cols: number, dy: number, dx: number, fill: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) {
      const sr = r - dy;
      const sc = c - dx;
      out.push(sr >= 0 && sr < rows && sc >= 0 && sc < cols ? img[sr * cols + sc]! : fill);
    }
  return out;
}

describe("epochOrder", () => {
  it("is a permutation that depends only on (count, seed, epoch)", () => {
    const a = epochOrder(1000, 3, 0);
    assert.ok(isPermutation(a));
    assert.deepEqual(epochOrder(1000, 3, 0), a);
    assert.notDeepEqual(epochOrder(1000, 3, 1), a);
    assert.notDeepEqual(epochOrder(1000, 4, 0), a);
    assert.ok(!a.every((v, i) => v === i), "shuffled");
    assert.deepEqual(Array.from(epochOrder(10, 0, 0)), [1, 4, 8, 2, 6, 5, 9, 0, 3, 7], "pinned");
    assert.equal(epochOrder(0, 0, 0).length, 0);
    assert.deepEqual(Array.from(epochOrder(1, 0, 0)), [0]);
    assert.throws(() => epochOrder(10, 0, -1), /key 'epoch'/);
  });
});

describe("fillBatch", () => {
  it("copies the split's rows at the given indices into reused buffers", () => {
    const split = loadTaskSplit("rot90", "val");
    const order = epochOrder(split.count, 1, 0);
    const xb = new Float32Array(128 * 784);
    const yb = new Int32Array(128);
    for (const start of [0, 128, 4992]) {
      const n = fillBatch(split, order, start, 128, xb, yb);
      assert.equal(n, start === 4992 ? 8 : 128);
      for (let b = 0; b < n; b++) {
        const e = order[start + b]!;
        assert.equal(yb[b], split.y[e]);
        assert.deepEqual(xb.subarray(b * 784, (b + 1) * 784), split.x.subarray(e * 784, (e + 1) * 784));
      }
    }
    assert.equal(fillBatch(split, order, 5000, 128, xb, yb), 0);
  });

  it("rejects buffers that are too small and indices outside the split", () => {
    const split = synthetic(10);
    assert.throws(
      () => fillBatch(split, [0, 1, 2], 0, 3, new Float32Array(2 * 30), new Int32Array(3)),
      (e: unknown) => e instanceof FusionError && e.code === "SHAPE_MISMATCH",
    );
    assert.throws(
      () => fillBatch(split, [0, 10], 0, 2, new Float32Array(60), new Int32Array(2)),
      /key 'synthetic\/train': example index 10 outside \[0, 10\)/,
    );
    assert.throws(() => fillBatch(split, [0], 0, 0, new Float32Array(60), new Int32Array(2)), /batchSize=0/);
  });

  it("augments with integer shifts of at most maxShift, background fill, deterministic per seed", () => {
    const split = synthetic(200);
    const pixels = 30;
    const indices = Uint32Array.from({ length: 200 }, (_, i) => i);
    const xb = new Float32Array(200 * pixels);
    const yb = new Int32Array(200);
    fillBatch(split, indices, 0, 200, xb, yb, { maxShift: 2, rng: seededGenerator(5) });
    const seen = new Set<string>();
    for (let b = 0; b < 200; b++) {
      const img = split.x.subarray(b * pixels, (b + 1) * pixels);
      const got = Array.from(xb.subarray(b * pixels, (b + 1) * pixels));
      const matches: string[] = [];
      for (let dy = -3; dy <= 3; dy++)
        for (let dx = -3; dx <= 3; dx++)
          if (JSON.stringify(got) === JSON.stringify(shifted(img, 6, 5, dy, dx, img[0]!))) matches.push(`${dy},${dx}`);
      assert.equal(matches.length, 1, `example ${b}: ${matches}`);
      const [dy, dx] = matches[0]!.split(",").map(Number) as [number, number];
      assert.ok(Math.abs(dy) <= 2 && Math.abs(dx) <= 2, matches[0]);
      seen.add(matches[0]!);
      assert.equal(yb[b], split.y[b]);
    }
    assert.equal(seen.size, 25, "every shift in [-2, 2]^2 occurs");

    const again = new Float32Array(200 * pixels);
    fillBatch(split, indices, 0, 200, again, yb, { maxShift: 2, rng: seededGenerator(5) });
    assert.deepEqual(again, xb, "same seed, same batch");
    fillBatch(split, indices, 0, 200, again, yb, { maxShift: 2, rng: seededGenerator(6) });
    assert.notDeepEqual(again, xb, "another seed, other shifts");
    fillBatch(split, indices, 0, 200, again, yb, { maxShift: 0, rng: seededGenerator(6) });
    assert.deepEqual(again, split.x, "maxShift 0 copies");
  });

  it("fills with an explicit value, or the background of the real images", () => {
    const split = synthetic(40);
    const xb = new Float32Array(40 * 30);
    const indices = Array.from({ length: 40 }, (_, i) => i);
    fillBatch(split, indices, 0, 40, xb, new Int32Array(40), { maxShift: 1, rng: seededGenerator(1), fill: -9 });
    let filled = 0;
    for (let b = 0; b < 40; b++) {
      const img = split.x.subarray(b * 30, (b + 1) * 30);
      const got = JSON.stringify(Array.from(xb.subarray(b * 30, (b + 1) * 30)));
      let ok = false;
      for (let dy = -1; dy <= 1; dy++)
        for (let dx = -1; dx <= 1; dx++) ok ||= got === JSON.stringify(shifted(img, 6, 5, dy, dx, -9));
      assert.ok(ok, `example ${b}`);
    }
    for (const v of xb) if (v === -9) filled++;
    assert.ok(filled > 100, `filled ${filled}`);
    const real = loadTaskSplit("fmnist", "test", { limit: 64 });
    const xr = new Float32Array(64 * 784);
    fillBatch(real, epochOrder(64, 0, 0), 0, 64, xr, new Int32Array(64), { maxShift: 3, rng: seededGenerator(2) });
    let background = 0;
    for (let b = 0; b < 64; b++) if (xr[b * 784] === NORMALISE[0]) background++;
    assert.ok(background > 60, `corners stay background: ${background}`);
  });

  it("is fast: a 128-example batch well under 1 ms", () => {
    const split = loadTaskSplit("fmnist", "val");
    const order = epochOrder(split.count, 0, 0);
    const xb = new Float32Array(128 * 784);
    const yb = new Int32Array(128);
    const rng = seededGenerator(0);
    const time = (augment: boolean) => {
      for (let i = 0; i < 20; i++) fillBatch(split, order, 0, 128, xb, yb, augment ? { maxShift: 2, rng } : undefined);
      const t0 = performance.now();
      for (let i = 0; i < 39; i++)
        fillBatch(split, order, i * 128, 128, xb, yb, augment ? { maxShift: 2, rng } : undefined);
      return (performance.now() - t0) / 39;
    };
    const plain = time(false);
    const augmented = time(true);
    assert.ok(plain < 1, `plain ${plain.toFixed(3)} ms`);
    assert.ok(augmented < 1, `augmented ${augmented.toFixed(3)} ms`);
  });
});
