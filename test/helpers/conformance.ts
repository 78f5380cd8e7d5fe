import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The shared conformance vectors (computed by mergekit's own code), beside the checkout as ../shared/conformance. */
export const CONFORMANCE_DIR =
  process.env.FUSIONKIT_CONFORMANCE_DIR ??
  resolve(dirname(fileURLToPath(import.meta.url)), "../../../shared/conformance");

export interface ConformanceCase {
  name: string;
  file: string;
  method: string;
  kind?: "exact" | "mask_replay";
  tensors: Record<string, number[]>;
  has_base?: boolean;
  num_models?: number;
  weight_info: { name: string; is_embed: boolean };
  global_parameters?: Record<string, unknown>;
  global_parameters_explicit: Record<string, unknown>;
  model_parameters: Array<Record<string, number>>;
  tolerance?: { atol: number; rtol: number };
  float64_rerun_deviation?: { max_abs_expected: number } | null;
  expected_has_nonfinite?: boolean;
  known_mergekit_bug?: string | null;
  mergekit_error?: string;
  statistics?: Record<string, unknown>;
  notes?: string;
}

export interface ConformanceManifest {
  format: string;
  cases: ConformanceCase[];
  error_cases: ConformanceCase[];
}

export function loadManifest(): ConformanceManifest {
  return JSON.parse(readFileSync(join(CONFORMANCE_DIR, "manifest.json"), "utf8")) as ConformanceManifest;
}

export function casePath(c: ConformanceCase): string {
  return join(CONFORMANCE_DIR, c.file);
}
