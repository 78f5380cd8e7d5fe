// Conformance with mergekit: one test per case of the shared manifest (new cases are picked up automatically),
// one per error case, and statistical checks of the random samplers against mergekit's own draws.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FusionError } from "../../src/errors.js";
import {
  getMethod,
  hasMethod,
  type MergeResult,
  type RescaleNorm,
  replayMasks,
  seededMasks,
  signConsensusMasks,
  sparsify,
  sparsityMask,
  type TensorData,
} from "../../src/merge/index.js";
import {
  type ConformanceCase,
  caseInputs,
  compareArrays,
  HAVE_CONFORMANCE,
  loadCaseTensors,
  loadManifest,
} from "./conformance-data.js";

/**
 * Cases whose mergekit output fusionkit deliberately does not reproduce: the test asserts a FusionError instead.
 * (linear with normalize and weights summing to 0: mergekit returns inf/NaN; the manifest README asks for a
 * clear error.)
 */
const REJECTED_BY_DESIGN: Record<string, string> = {
  linear_zero_sum_normalize: "normalize with weights summing to zero",
};

/**
 * Known mergekit bugs (`known_mergekit_bug`): how to derive the intended result from `expected`. An unknown bug
 * case fails the test so that it gets looked at.
 */
const KNOWN_BUGS: Record<string, (expected: TensorData, c: ConformanceCase) => TensorData> = {
  // sce with k == 0 returns shape [N, *shape], every row equal to the base; the intended result is one row.
  sce_identical_topk0p5: (e) => {
    const rows = e.shape[0]!;
    const shape = e.shape.slice(1);
    const n = e.data.length / rows;
    return { data: e.data.slice(0, n), shape };
  },
};

function runCase(c: ConformanceCase, t: Map<string, TensorData>): MergeResult {
  const { models, base, masks } = caseInputs(t, c.num_models);
  const g = c.global_parameters;
  if (c.method.startsWith("sparsify.")) {
    const x = models[0]!;
    const data = sparsify(x.data, {
      method: g.method as "magnitude" | "magnitude_outliers",
      density: g.density as number,
      gamma: (g.gamma as number | undefined) ?? undefined,
      rescaleNorm: (g.rescale_norm as RescaleNorm | null) ?? null,
      shape: x.shape,
    });
    return { data, shape: [...x.shape] };
  }
  if (c.method === "get_mask") {
    assert.equal(g.method, "sum");
    const b = base!.data;
    const weighted = models.map((m, i) => {
      const w = Math.fround(c.model_parameters[i]!.weight as number);
      const out = new Float32Array(b.length);
      for (let j = 0; j < b.length; j++) out[j] = Math.fround(m.data[j]! - b[j]!) * w;
      return out;
    });
    const m = signConsensusMasks(weighted, "sum");
    const data = new Float32Array(b.length * m.length);
    for (let i = 0; i < m.length; i++) data.set(m[i]!, i * b.length);
    return { data, shape: [m.length, ...base!.shape] };
  }
  const spec = getMethod(c.method);
  return spec.merge({
    tensorName: c.weight_info?.name ?? c.name,
    isEmbed: c.weight_info?.is_embed ?? false,
    models,
    base,
    params: g,
    modelParams: c.model_parameters,
    masks: c.kind === "mask_replay" ? replayMasks(masks) : undefined,
  });
}

const manifest = HAVE_CONFORMANCE ? loadManifest() : { cases: [], error_cases: [] };

describe("mergekit conformance cases", { skip: HAVE_CONFORMANCE ? false : "conformance vectors not found" }, () => {
  for (const c of manifest.cases) {
    test(`${c.name} (${c.method}, ${c.kind})`, () => {
      const t = loadCaseTensors(c.file);
      if (c.name in REJECTED_BY_DESIGN) {
        assert.throws(
          () => runCase(c, t),
          (e: unknown) => e instanceof FusionError && e.code === "MERGE_INVALID",
        );
        return;
      }
      let expected = t.get("expected")!;
      if (c.known_mergekit_bug !== null) {
        const fix = KNOWN_BUGS[c.name];
        assert.ok(fix, `unhandled known mergekit bug in ${c.name}: ${c.known_mergekit_bug}`);
        expected = fix(expected, c);
      }
      const actual = runCase(c, t);
      assert.deepEqual(actual.shape, [...expected.shape], "output shape");
      const problem = compareArrays(actual.data, expected.data, c.tolerance);
      assert.equal(problem, undefined, problem);
    });
  }
});

describe("mergekit error cases are rejected", {
  skip: HAVE_CONFORMANCE ? false : "conformance vectors not found",
}, () => {
  for (const c of manifest.error_cases) {
    test(`${c.name} (${c.method}): ${c.mergekit_error.split(":")[0]}`, () => {
      const t = loadCaseTensors(c.file);
      const n = Object.keys(c.model_parameters).length;
      const { models, base } = caseInputs(t, n);
      assert.ok(hasMethod(c.method));
      assert.throws(
        () =>
          getMethod(c.method).merge({
            tensorName: c.weight_info.name,
            isEmbed: c.weight_info.is_embed,
            models,
            base,
            params: c.global_parameters_explicit,
            modelParams: c.model_parameters,
          }),
        (e: unknown) => {
          assert.ok(e instanceof FusionError, `expected a FusionError, got ${String(e)}`);
          assert.ok(e.code === "MERGE_INVALID" || e.code === "SHAPE_MISMATCH", e.code);
          assert.equal(e.tensor, c.weight_info.name, "the error names the tensor");
          return true;
        },
      );
    });
  }
});

// ---- sampler statistics ----

function meanStd(xs: number[]): { mean: number; std: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const v = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length;
  return { mean, std: Math.sqrt(v) };
}

const randomCases = manifest.cases.filter((c) => c.kind === "mask_replay" && c.statistics !== undefined);

describe("random samplers match mergekit's statistics", { skip: HAVE_CONFORMANCE ? false : "no vectors" }, () => {
  for (const c of randomCases) {
    test(`${c.name}: kept fraction, rescale factor${c.method.startsWith("della") ? ", rank deciles" : ""}`, () => {
      const stats = c.statistics!;
      const t = loadCaseTensors(c.file);
      const { models, base } = caseInputs(t, c.num_models);
      const b = base!.data;
      const isDella = c.method.startsWith("della");
      const rescaleNorm: RescaleNorm | null = c.global_parameters.rescale === true ? "l1" : null;
      const trials = stats.trials;
      models.forEach((m, i) => {
        const ms = stats.per_model[i]!;
        const p = c.model_parameters[i]!;
        const delta = new Float32Array(b.length);
        for (let j = 0; j < b.length; j++) delta[j] = m.data[j]! - b[j]!;
        // Decile of each element's magnitude rank within its row (della only).
        const rowLen = m.shape[m.shape.length - 1]!;
        const decile = new Uint8Array(b.length);
        if (isDella) {
          for (let r = 0; r < b.length; r += rowLen) {
            const idx = Array.from({ length: rowLen }, (_, k) => r + k).sort(
              (x, y) => Math.abs(delta[x]!) - Math.abs(delta[y]!) || x - y,
            );
            idx.forEach((j, rank) => {
              decile[j] = Math.min(9, Math.floor((rank * 10) / rowLen));
            });
          }
        }
        const kept: number[] = [];
        const factors: number[] = [];
        const decKept = new Float64Array(10);
        const decCount = new Float64Array(10);
        for (let s = 0; s < trials; s++) {
          const r = sparsityMask(delta, {
            method: isDella ? "della_magprune" : "random",
            density: p.density as number,
            epsilon: p.epsilon as number | undefined,
            rescaleNorm,
            shape: m.shape,
            masks: seededMasks(1000 + s, c.weight_info!.name),
            modelIndex: i,
          });
          const keep = r.keep!;
          let k = 0;
          for (let j = 0; j < keep.length; j++) {
            k += keep[j]!;
            if (isDella) {
              decKept[decile[j]!] += keep[j]!;
              decCount[decile[j]!]++;
            }
          }
          kept.push(k / keep.length);
          factors.push(r.scale);
        }
        const kf = meanStd(kept);
        const se = Math.SQRT2 * (ms.kept_fraction_std_per_trial / Math.sqrt(trials));
        assert.ok(
          Math.abs(kf.mean - ms.kept_fraction_mean) < 5 * se,
          `model ${i}: kept fraction ${kf.mean} vs mergekit ${ms.kept_fraction_mean} (5 SE = ${5 * se})`,
        );
        const ratio = kf.std / ms.kept_fraction_std_per_trial;
        assert.ok(
          ratio > 0.7 && ratio < 1.4,
          `model ${i}: kept-fraction std ${kf.std} vs ${ms.kept_fraction_std_per_trial}`,
        );
        const rf = meanStd(factors);
        if (ms.rescale_factor_std === 0) assert.equal(rf.mean, ms.rescale_factor_mean, "rescale factor");
        else {
          const fse = Math.SQRT2 * (ms.rescale_factor_std / Math.sqrt(trials));
          assert.ok(
            Math.abs(rf.mean - ms.rescale_factor_mean) < 5 * fse,
            `model ${i}: rescale factor ${rf.mean} vs mergekit ${ms.rescale_factor_mean} (5 SE = ${5 * fse})`,
          );
          // The factor is L1(delta) / L1(kept delta), not 1 / density.
          assert.ok(rf.std > 0, "the rescale factor varies with the draw");
        }
        if (isDella) {
          for (let d = 0; d < 10; d++) {
            const frac = decKept[d]! / decCount[d]!;
            assert.ok(
              Math.abs(frac - ms.kept_fraction_by_rank_decile![d]!) < 0.012,
              `model ${i} decile ${d}: ${frac} vs mergekit ${ms.kept_fraction_by_rank_decile![d]}`,
            );
          }
        }
      });
    });
  }
});
