import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  FMNIST8,
  flipVertical,
  getTask,
  identity,
  invert,
  loadFashionMnist,
  loadTaskSplit,
  NORMALISE,
  permuteQuadrants,
  QUADRANT_DESTINATION,
  rotate90,
  type Transform,
} from "../../src/data/index.js";
import { FusionError } from "../../src/errors.js";

/** 0 1 2 3 / 4 5 6 7 / 8 9 10 11 / 12 13 14 15 */
const SQUARE = Uint8Array.from({ length: 16 }, (_, i) => i);

function apply(t: Transform, src: Uint8Array, rows: number, cols: number): number[] {
  const copy = src.slice();
  const out = new Uint8Array(rows * cols).fill(99);
  t(src, out, rows, cols);
  assert.deepEqual(src, copy, "the source is not modified");
  return Array.from(out);
}

function randomImage(n: number, seed: number): Uint8Array {
  let s = seed;
  return Uint8Array.from({ length: n * n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s >>> 24;
  });
}

describe("transforms", () => {
  it("rot90 rotates counter-clockwise like numpy rot90(img, 1)", () => {
    assert.deepEqual(apply(rotate90, SQUARE, 4, 4), [3, 7, 11, 15, 2, 6, 10, 14, 1, 5, 9, 13, 0, 4, 8, 12]);
    // a pixel at the top-right corner ends up at the top-left
    const img = new Uint8Array(784);
    img[27] = 200;
    const out = apply(rotate90, img, 28, 28);
    assert.equal(out[0], 200);
    assert.equal(out.filter((v) => v !== 0).length, 1);
  });

  it("rot90 four times is the identity, twice is a 180-degree turn", () => {
    const img = randomImage(28, 7);
    let a = img;
    const results: Uint8Array[] = [];
    for (let k = 0; k < 4; k++) {
      const b = new Uint8Array(784);
      rotate90(a, b, 28, 28);
      results.push(b);
      a = b;
    }
    assert.deepEqual(results[3], img);
    assert.notDeepEqual(results[0], img);
    assert.deepEqual(Array.from(results[1]!), Array.from(img).reverse());
    assert.throws(() => rotate90(new Uint8Array(12), new Uint8Array(12), 3, 4), /square/);
  });

  it("flip turns the image upside down", () => {
    assert.deepEqual(apply(flipVertical, SQUARE, 4, 4), [12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3]);
    assert.deepEqual(apply(flipVertical, SQUARE, 2, 8), [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it("invert is 255 - p", () => {
    assert.deepEqual(apply(invert, Uint8Array.from([0, 1, 128, 255]), 2, 2), [255, 254, 127, 0]);
  });

  it("quadrants move one step clockwise, every quadrant moves", () => {
    assert.deepEqual(QUADRANT_DESTINATION, [1, 3, 0, 2]);
    for (let q = 0; q < 4; q++) assert.notEqual(QUADRANT_DESTINATION[q], q);
    assert.deepEqual(new Set(QUADRANT_DESTINATION).size, 4);
    // TL [0 1 4 5] -> TR, TR [2 3 6 7] -> BR, BL [8 9 12 13] -> TL, BR [10 11 14 15] -> BL
    assert.deepEqual(apply(permuteQuadrants, SQUARE, 4, 4), [8, 9, 0, 1, 12, 13, 4, 5, 10, 11, 2, 3, 14, 15, 6, 7]);
    const img = randomImage(28, 3);
    const out = apply(permuteQuadrants, img, 28, 28);
    assert.equal(out[0 * 28 + 14], img[0], "top-left corner -> top-right quadrant's corner");
    assert.equal(out[14 * 28 + 27], img[27], "top-right corner -> top-right of the bottom-right quadrant");
    assert.equal(out[27 * 28 + 13], img[27 * 28 + 27], "bottom-right corner -> bottom-left quadrant");
    assert.equal(out[13 * 28 + 0], img[27 * 28 + 0], "bottom-left's bottom-left -> top-left's bottom-left");
    assert.throws(() => permuteQuadrants(new Uint8Array(15), new Uint8Array(15), 3, 5), /even/);
  });

  it("quadrants four times, flip twice and invert twice are the identity", () => {
    const img = randomImage(28, 11);
    const twice = (t: Transform, k: number) => {
      let a = img;
      for (let i = 0; i < k; i++) {
        const b = new Uint8Array(784);
        t(a, b, 28, 28);
        a = b;
      }
      return a;
    };
    assert.deepEqual(twice(permuteQuadrants, 4), img);
    assert.notDeepEqual(twice(permuteQuadrants, 2), img);
    assert.deepEqual(twice(flipVertical, 2), img);
    assert.deepEqual(twice(invert, 2), img);
    assert.deepEqual(twice(identity, 1), img);
  });
});

describe("the fmnist-8 suite", () => {
  it("lists eight tasks in order", () => {
    assert.deepEqual(
      FMNIST8.map((t) => t.name),
      ["fmnist", "rot90", "flip", "invert", "quadrants", "coarse4", "first5", "last5"],
    );
    for (const t of FMNIST8) {
      assert.equal(t.labelMap.length, 10, t.name);
      assert.equal(t.classNames.length, t.numClasses, t.name);
      assert.equal(Math.max(...t.labelMap) + 1, t.numClasses, t.name);
      assert.equal(getTask(t.name), t);
    }
  });

  it("maps labels with the documented counts on the real test set", () => {
    const expected: Record<string, number[]> = {
      fmnist: new Array(10).fill(1000),
      rot90: new Array(10).fill(1000),
      flip: new Array(10).fill(1000),
      invert: new Array(10).fill(1000),
      quadrants: new Array(10).fill(1000),
      coarse4: [4000, 2000, 3000, 1000],
      first5: new Array(5).fill(1000),
      last5: new Array(5).fill(1000),
    };
    const raw = loadFashionMnist("test");
    for (const t of FMNIST8) {
      const s = loadTaskSplit(t, "test");
      const counts = new Array(t.numClasses).fill(0);
      for (const y of s.y) counts[y]++;
      assert.deepEqual(counts, expected[t.name], t.name);
      assert.equal(s.count, s.y.length);
      assert.equal(s.x.length, s.count * 784);
    }
    // which raw classes go where
    const first5 = loadTaskSplit("first5", "test");
    const last5 = loadTaskSplit("last5", "test");
    const coarse = loadTaskSplit("coarse4", "test");
    const rawKept = (keep: (l: number) => boolean) => Array.from(raw.labels).filter(keep);
    assert.deepEqual(
      Array.from(first5.y),
      rawKept((l) => l < 5),
    );
    assert.deepEqual(
      Array.from(last5.y),
      rawKept((l) => l >= 5).map((l) => l - 5),
    );
    const coarseOf = [0, 1, 0, 1, 0, 2, 0, 2, 3, 2];
    assert.deepEqual(
      Array.from(coarse.y),
      Array.from(raw.labels, (l) => coarseOf[l]),
    );
  });

  it("applies each task's transform to the real images", () => {
    const raw = loadFashionMnist("test");
    for (const t of FMNIST8) {
      const s = loadTaskSplit(t, "test", { limit: 1 });
      const first = raw.labels.findIndex((l) => t.labelMap[l]! >= 0);
      assert.equal(first, t.name === "first5" ? 1 : 0);
      const img = raw.images.subarray(first * 784, (first + 1) * 784);
      const expected = new Uint8Array(784);
      t.transform(img, expected, 28, 28);
      assert.deepEqual(
        Array.from(s.x.subarray(0, 784)),
        Array.from(expected, (p) => NORMALISE[p]),
        t.name,
      );
    }
    const inv = loadTaskSplit("invert", "test", { limit: 1 });
    assert.equal(inv.x[400], NORMALISE[255 - raw.images[400]!]);
    assert.notEqual(raw.images[400], 255 - raw.images[400]!);
  });

  it("suggests the nearest task name on a typo", () => {
    const check = (name: string, pattern: RegExp) =>
      assert.throws(
        () => getTask(name),
        (e: unknown) => e instanceof FusionError && e.code === "INVALID_ARGUMENT" && pattern.test(e.message),
      );
    check("rot9", /unknown task 'rot9'; did you mean 'rot90'\?/);
    check("Quadrant", /did you mean 'quadrants'/);
    check("frist5", /did you mean 'first5'/);
    check("imagenet-sketch", /^key 'task': unknown task 'imagenet-sketch'; \(known: fmnist, rot90,/);
  });
});
