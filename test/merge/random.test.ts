// Reproducibility of the random methods: masks depend only on (seed, tensor name, model index).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { getMethod, type MergeInput, replayMasks, seededMasks, type TensorData } from "../../src/merge/index.js";

function rand(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 4294967296 - 0.5) * scale;
  });
}

const shape = [64, 48];
const n = 64 * 48;
const base: TensorData = { data: rand(n, 11), shape };
const models: TensorData[] = [12, 13].map((s) => ({
  data: Float32Array.from(rand(n, s, 0.2), (v, i) => v + base.data[i]!),
  shape,
}));

function mask(seed: number, name: string, model: number, p = 0.5): Uint8Array {
  const out = new Uint8Array(n);
  seededMasks(seed, name).fill(model, p, out);
  return out;
}

describe("seeded masks", () => {
  test("same seed, tensor and model give the same mask, regardless of call order", () => {
    const a1 = mask(7, "layers.0.mlp", 1);
    const a0 = mask(7, "layers.0.mlp", 0);
    assert.deepEqual(mask(7, "layers.0.mlp", 0), a0);
    assert.deepEqual(mask(7, "layers.0.mlp", 1), a1);
  });

  test("a different tensor name, model index or seed gives a different mask", () => {
    const ref = mask(7, "layers.0.mlp", 0);
    for (const other of [mask(7, "layers.1.mlp", 0), mask(7, "layers.0.mlp", 1), mask(8, "layers.0.mlp", 0)]) {
      let same = 0;
      for (let i = 0; i < n; i++) same += ref[i] === other[i] ? 1 : 0;
      // Independent masks with p = 0.5 agree on about half of the entries.
      assert.ok(Math.abs(same / n - 0.5) < 0.05, `agreement ${same / n}`);
    }
  });

  test("large seeds are supported; non-integer seeds are refused", () => {
    assert.notDeepEqual(mask(2 ** 40, "x", 0), mask(2 ** 40 + 1, "x", 0));
    assert.throws(() => seededMasks(0.5, "x"));
  });

  test("replayMasks reproduces given masks and refuses malformed ones", () => {
    const m = Float32Array.from({ length: 10 }, (_, i) => i % 2);
    const out = new Uint8Array(10);
    replayMasks([m]).fill(0, 0.3, out);
    assert.deepEqual([...out], [...m]);
    assert.throws(() => replayMasks([m]).fill(1, 0.3, out));
    assert.throws(() => replayMasks([new Float32Array(10).fill(0.5)]).fill(0, 0.3, out));
    assert.throws(() => replayMasks([new Float32Array(9)]).fill(0, 0.3, out));
  });
});

for (const name of ["dare_ties", "dare_linear", "della", "della_linear"]) {
  describe(`${name} merges`, () => {
    const input = (tensorName: string, seed?: number): MergeInput => ({
      tensorName,
      models,
      base,
      modelParams: [
        { weight: 1, density: 0.3, epsilon: 0.1 },
        { weight: 0.5, density: 0.6, epsilon: 0.2 },
      ],
      seed,
    });
    const spec = getMethod(name);

    test("are reproducible for a seed and tensor name (default seed 0)", () => {
      assert.ok(spec.random);
      assert.deepEqual(spec.merge(input("a.weight", 3)).data, spec.merge(input("a.weight", 3)).data);
      assert.deepEqual(spec.merge(input("a.weight")).data, spec.merge(input("a.weight", 0)).data);
    });

    test("differ across seeds and tensor names", () => {
      const ref = spec.merge(input("a.weight", 3)).data;
      assert.notDeepEqual(spec.merge(input("b.weight", 3)).data, ref);
      assert.notDeepEqual(spec.merge(input("a.weight", 4)).data, ref);
    });

    test("do not depend on what was merged before", () => {
      const a = spec.merge(input("a.weight", 3)).data;
      spec.merge(input("b.weight", 3));
      spec.merge(input("c.weight", 9));
      assert.deepEqual(spec.merge(input("a.weight", 3)).data, a);
    });

    test("use an injected mask source when given", () => {
      const keepAll = replayMasks([new Uint8Array(n).fill(1), new Uint8Array(n).fill(1)]);
      const viaMasks = spec.merge({ ...input("a.weight", 3), masks: keepAll }).data;
      const dense = spec.merge({
        ...input("a.weight", 3),
        modelParams: [
          { weight: 1, density: 1 },
          { weight: 0.5, density: 1 },
        ],
      }).data;
      assert.deepEqual(viaMasks, dense);
    });
  });
}
