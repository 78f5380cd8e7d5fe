// Loading the mergekit conformance vectors (/work/shared/conformance, override with FUSIONKIT_CONFORMANCE_DIR).

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadSafetensors } from "../../src/io/safetensors-read.js";
import type { TensorData } from "../../src/merge/index.js";
import { toFloat32 } from "../../src/tensor/convert.js";

export const CONFORMANCE_DIR =
  process.env.FUSIONKIT_CONFORMANCE_DIR ?? fileURLToPath(new URL("../../../shared/conformance/", import.meta.url));

export const HAVE_CONFORMANCE = existsSync(join(CONFORMANCE_DIR, "manifest.json"));

export type ParamRecord = Record<string, number | boolean | string | null>;

export interface ModelStatistics {
  density: number;
  kept_fraction_mean: number;
  kept_fraction_std_per_trial: number;
  rescale_factor_mean: number;
  rescale_factor_std: number;
  epsilon?: number;
  kept_fraction_by_rank_decile?: number[];
  theory_keep_prob_by_rank_decile_center?: number[];
}

export interface ConformanceCase {
  name: string;
  file: string;
  method: string;
  kind: "exact" | "mask_replay";
  has_base: boolean;
  num_models: number;
  weight_info: { name: string; is_embed: boolean } | null;
  global_parameters: ParamRecord;
  model_parameters: ParamRecord[];
  tolerance: { atol: number; rtol: number };
  expected_has_nonfinite: boolean;
  notes: string;
  known_mergekit_bug: string | null;
  statistics?: { trials: number; elements_per_model: number; per_model: ModelStatistics[] };
}

export interface ErrorCase {
  name: string;
  file: string;
  method: string;
  weight_info: { name: string; is_embed: boolean };
  global_parameters_explicit: ParamRecord;
  model_parameters: ParamRecord[];
  mergekit_error: string;
  notes: string;
}

export interface Manifest {
  cases: ConformanceCase[];
  error_cases: ErrorCase[];
}

export function loadManifest(): Manifest {
  return JSON.parse(readFileSync(join(CONFORMANCE_DIR, "manifest.json"), "utf8")) as Manifest;
}

/** The tensors of a case file as float32 TensorData by name. */
export function loadCaseTensors(file: string): Map<string, TensorData> {
  const { tensors } = loadSafetensors(join(CONFORMANCE_DIR, file));
  const out = new Map<string, TensorData>();
  for (const [name, t] of tensors) out.set(name, { data: toFloat32(t), shape: [...t.shape] });
  return out;
}

/** models (input.model_0..N-1), base (input.base) and aux masks of a loaded case. */
export function caseInputs(
  t: Map<string, TensorData>,
  numModels: number,
): { models: TensorData[]; base: TensorData | undefined; masks: Float32Array[] } {
  const models: TensorData[] = [];
  const masks: Float32Array[] = [];
  for (let i = 0; i < numModels; i++) {
    const m = t.get(`input.model_${i}`);
    if (m === undefined) throw new Error(`missing input.model_${i}`);
    models.push(m);
    const mask = t.get(`aux.mask_${i}`);
    if (mask !== undefined) masks.push(mask.data);
  }
  return { models, base: t.get("input.base"), masks };
}

/**
 * The manifest's comparison rule: |a - e| <= atol + rtol * |e| elementwise, NaN matches NaN, infinities exactly.
 * Returns a description of the first mismatches, or undefined when everything matches.
 */
export function compareArrays(
  actual: Float32Array,
  expected: Float32Array,
  tol: { atol: number; rtol: number },
): string | undefined {
  if (actual.length !== expected.length) return `length ${actual.length} != expected ${expected.length}`;
  const bad: string[] = [];
  let count = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    let ok: boolean;
    if (Number.isNaN(e)) ok = Number.isNaN(a);
    else if (!Number.isFinite(e)) ok = a === e;
    else {
      const diff = Math.abs(a - e);
      ok = diff <= tol.atol + tol.rtol * Math.abs(e);
      if (!ok && diff > worst) worst = diff;
    }
    if (!ok) {
      count++;
      if (bad.length < 5) bad.push(`[${i}] actual ${a} expected ${e}`);
    }
  }
  return count === 0 ? undefined : `${count} of ${expected.length} differ (worst |diff| ${worst}): ${bad.join("; ")}`;
}
