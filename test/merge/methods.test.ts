// Method semantics beyond the conformance vectors: edge cases, divergences from mergekit, layouts.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FusionError } from "../../src/errors.js";
import { getMethod, type MaskSource, type MergeInput, sparsityMask, type TensorData } from "../../src/merge/index.js";
import { nuslerpInto } from "../../src/merge/methods/nuslerp.js";

const t = (values: number[], shape = [values.length]): TensorData => ({ data: Float32Array.from(values), shape });
const merge = (name: string, input: Omit<MergeInput, "tensorName">) =>
  getMethod(name).merge({ tensorName: "w", ...input });
const isMergeInvalid = (e: unknown) => e instanceof FusionError && e.code === "MERGE_INVALID";
const isShapeMismatch = (e: unknown) => e instanceof FusionError && e.code === "SHAPE_MISMATCH";

function close(actual: Float32Array, expected: number[], tol = 1e-6): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `[${i}] ${actual[i]} vs ${expected[i]}`);
  }
}

describe("linear", () => {
  test("normalises by the weight sum; rejects a (numerically) zero sum instead of returning inf/NaN", () => {
    close(
      merge("linear", { models: [t([1, 2]), t([3, 6])], modelParams: [{ weight: 1 }, { weight: 3 }] }).data,
      [2.5, 5],
    );
    assert.throws(
      () =>
        merge("linear", {
          models: [t([1]), t([2]), t([3])],
          modelParams: [{ weight: 0.1 }, { weight: 0.2 }, { weight: -0.3 }],
        }),
      isMergeInvalid,
    );
    close(
      merge("linear", {
        models: [t([1]), t([2])],
        modelParams: [{ weight: 1 }, { weight: -1 }],
        params: { normalize: false },
      }).data,
      [-1],
    );
  });
});

describe("task-arithmetic family", () => {
  test("an exact sign tie elects +", () => {
    const out = merge("ties", {
      base: t([0]),
      models: [t([1]), t([-1])],
      modelParams: [{ weight: 1 }, { weight: 1 }],
    });
    close(out.data, [1]);
  });

  test("a negative weight flips a model's vote", () => {
    // Weighted deltas: 1 * 1 = +1 and (-1) * (-2) = +2, so both agree with the elected + sign.
    const out = merge("ties", {
      base: t([0]),
      models: [t([1]), t([-2])],
      modelParams: [{ weight: 1 }, { weight: -1 }],
      params: { normalize: false },
    });
    close(out.data, [3]);
  });

  test("an embedding larger than the base is cropped to it", () => {
    const base = t([0, 0, 0, 0], [2, 2]);
    const big = t([1, 2, 9, 3, 4, 9, 9, 9, 9], [3, 3]);
    const out = merge("task_arithmetic", { isEmbed: true, base, models: [big], modelParams: [{ weight: 1 }] });
    assert.deepEqual(out.shape, [2, 2]);
    close(out.data, [1, 2, 3, 4]);
    assert.throws(
      () => merge("task_arithmetic", { base, models: [big], modelParams: [{ weight: 1 }] }),
      isShapeMismatch,
      "non-embedding mismatch is refused (mergekit silently drops the model)",
    );
  });

  test("della keep probabilities follow the magnitude rank along dim 1", () => {
    // Shape [2, 3, 2]: lines run along dim 1 (length 3), e.g. elements 0, 2, 4 form one line.
    const delta = Float32Array.from([0.3, -5, -0.1, 4, 0.2, 6, 1, 1, 3, 2, 2, 3]);
    let seen: Float32Array | undefined;
    const probe: MaskSource = {
      fill(_m, probs, out) {
        seen = Float32Array.from(probs as Float32Array);
        out.fill(1);
      },
    };
    sparsityMask(delta, { method: "della_magprune", density: 0.5, epsilon: 0.2, shape: [2, 3, 2], masks: probe });
    // ranks in each line (0 = smallest |x|, ties by position): line [0.3,-0.1,0.2] -> 2,0,1; [-5,4,6] -> 1,0,2;
    // [1,3,2] -> 0,2,1; [1,2,3] -> 0,1,2. p = 0.3 + 0.4 * rank / 2.
    const ranks = [2, 1, 0, 0, 1, 2, 0, 0, 2, 1, 1, 2];
    close(
      seen!,
      ranks.map((r) => 0.3 + 0.2 * r),
      1e-6,
    );
  });
});

describe("model_stock", () => {
  test("rejects perfectly anti-correlated offsets instead of dividing by zero", () => {
    assert.throws(
      () => merge("model_stock", { base: t([0, 0, 0]), models: [t([1, 2, 3]), t([-1, -2, -3])] }),
      isMergeInvalid,
    );
  });
  test("orthogonal offsets give t = 0 (the base); identical offsets give t = 1 (their mean)", () => {
    close(merge("model_stock", { base: t([1, 1]), models: [t([2, 1]), t([1, 2])] }).data, [1, 1]);
    close(merge("model_stock", { base: t([1, 1]), models: [t([2, 3]), t([2, 3])] }).data, [2, 3]);
  });
});

describe("multislerp", () => {
  test("two antipodal inputs fall back to the weighted sum; weights summing to 0 are refused", () => {
    close(
      merge("multislerp", { models: [t([1, 2]), t([-1, -2])], modelParams: [{ weight: 1 }, { weight: 1 }] }).data,
      [0, 0],
    );
    assert.throws(
      () => merge("multislerp", { models: [t([1, 2]), t([2, 1])], modelParams: [{ weight: 1 }, { weight: -1 }] }),
      isMergeInvalid,
    );
  });
  test("keeps the weighted average norm and the spherical mean direction", () => {
    const out = merge("multislerp", { models: [t([2, 0]), t([0, 4])], modelParams: [{ weight: 1 }, { weight: 1 }] });
    // unit mean direction (1,1)/sqrt2, average norm 3
    close(out.data, [3 / Math.SQRT2, 3 / Math.SQRT2], 1e-6);
  });
});

describe("embedding rectification", () => {
  // Base [3, 2] and models [4, 2] / [2, 3]: every method crops all inputs to the common [2, 2] block.
  const base = t([1, 2, 3, 4, 5, 6], [3, 2]);
  const big = t([1.5, 2, 3, 4.5, 9, 9, 9, 9], [4, 2]);
  const wide = t([0.5, 2.5, 9, 3, 4, 9], [2, 3]);
  const cases: Record<string, Omit<MergeInput, "tensorName">> = {
    linear: { models: [base, big, wide], modelParams: [{ weight: 1 }, { weight: 1 }, { weight: 1 }] },
    slerp: { base, models: [wide], params: { t: 0.5 } },
    nuslerp: { base, models: [big, wide], modelParams: [{ weight: 1 }, { weight: 1 }] },
    multislerp: { base, models: [big, wide], modelParams: [{ weight: 1 }, { weight: 1 }] },
    karcher: { models: [base, big, wide] },
    ties: { base, models: [big, wide], modelParams: [{ weight: 1 }, { weight: 1 }] },
    model_stock: { base, models: [big, wide] },
    sce: { base, models: [big, wide] },
    nearswap: { base, models: [wide], params: { t: 0.1 } },
  };
  for (const [name, input] of Object.entries(cases)) {
    test(`${name}: inputs of an embedding are cropped to their common block`, () => {
      const out = merge(name, { ...input, isEmbed: true });
      assert.deepEqual(out.shape, [2, 2]);
      assert.throws(() => merge(name, input), isShapeMismatch, "without isEmbed the mismatch is refused");
    });
  }
  test("task arithmetic on cropped embeddings equals task arithmetic on the common blocks", () => {
    const out = merge("task_arithmetic", {
      isEmbed: true,
      base,
      models: [big, wide],
      modelParams: [{ weight: 1 }, { weight: 1 }],
    });
    // common block: base [1,2,3,4], big [1.5,2,3,4.5], wide [0.5,2.5,3,4] -> base + sum of deltas
    close(out.data, [1, 2.5, 3, 4.5]);
  });
});

describe("karcher", () => {
  test("crops embeddings to the common block (mergekit's rectification here is a no-op), refuses other mismatches", () => {
    const a = t([1, 0, 5, 0, 1, 5], [2, 3]);
    const b = t([1, 0, 0, 1], [2, 2]);
    const out = merge("karcher", { isEmbed: true, models: [a, b] });
    assert.deepEqual(out.shape, [2, 2]);
    close(out.data, [1, 0, 0, 1], 1e-6);
    assert.throws(() => merge("karcher", { models: [a, b] }), isShapeMismatch);
  });
  test("the mean of two orthogonal unit vectors bisects them", () => {
    close(merge("karcher", { models: [t([1, 0]), t([0, 1])] }).data, [Math.SQRT1_2, Math.SQRT1_2], 1e-6);
  });
});

describe("nuslerp layouts", () => {
  test("row-wise on a 3-D tensor slerps the slices along dim 0 independently", () => {
    const shape = [3, 2, 2];
    const a = Float32Array.from([1, 0.2, -1, 3, 0.5, 2, 1, -1, 2, 0, 1, 1]);
    const b = Float32Array.from([0.1, 1, 2, 1, -0.5, 2, 0.3, 1, 1, 1, -1, 2]);
    const out = nuslerpInto(0.3, a, b, shape, "dim0", new Float32Array(12));
    for (let c = 0; c < 4; c++) {
      const va = Float32Array.from([a[c]!, a[c + 4]!, a[c + 8]!]);
      const vb = Float32Array.from([b[c]!, b[c + 4]!, b[c + 8]!]);
      const want = nuslerpInto(0.3, va, vb, [3], "flatten", new Float32Array(3));
      close(Float32Array.from([out[c]!, out[c + 4]!, out[c + 8]!]), [...want], 1e-6);
    }
  });
  test("with a base, exactly two other models are required", () => {
    assert.throws(
      () => merge("nuslerp", { base: t([0, 0]), models: [t([1, 2])], modelParams: [{ weight: 1 }] }),
      isMergeInvalid,
    );
  });
});

describe("sce, nearswap, passthrough, slerp", () => {
  test("sce with select_topk 0 keeps nothing: the base", () => {
    const out = merge("sce", { base: t([1, 2]), models: [t([3, 4]), t([0, 1])], params: { select_topk: 0 } });
    close(out.data, [1, 2]);
  });
  test("nearswap swaps in the model where it is within t of the base", () => {
    close(merge("nearswap", { base: t([0, 0]), models: [t([0.1, 1])], params: { t: 0.2 } }).data, [0.1, 0.2]);
  });
  test("passthrough copies and optionally scales", () => {
    close(merge("passthrough", { models: [t([1, -2])] }).data, [1, -2]);
    close(merge("passthrough", { models: [t([1, -2])], modelParams: [{ scale: 0.5 }] }).data, [0.5, -1]);
  });
  test("slerp of orthogonal vectors at t = 0.5 bisects the angle", () => {
    const out = merge("slerp", { base: t([1, 0]), models: [t([0, 1])], params: { t: 0.5 } });
    close(out.data, [Math.SQRT1_2, Math.SQRT1_2]);
  });
  test("slerp with only the base returns (a copy of) the base", () => {
    const base = t([1, 2]);
    const out = merge("slerp", { base, models: [], params: { t: 0.5 } });
    close(out.data, [1, 2]);
    assert.notEqual(out.data, base.data);
  });
});
