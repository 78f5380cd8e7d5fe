// Parameter resolution for merge methods: fill defaults, check types and ranges, name the culprit on failure.

import { FusionError } from "../errors.js";
import type { ParamSpec, ParamValue, ParamValues, ResolvedParams } from "./types.js";

/** Where a parameter came from, for error messages. */
export interface ParamWhere {
  method: string;
  tensor: string;
  /** Model index for per-model parameters. */
  model?: number;
}

function fail(where: ParamWhere, name: string, message: string): never {
  const scope = where.model === undefined ? "" : ` (model ${where.model})`;
  throw new FusionError("MERGE_INVALID", `${where.method}: parameter '${name}'${scope} ${message}`, {
    tensor: where.tensor,
    key: name,
  });
}

/** A human-readable range such as "(0, 1]" for a number parameter, or undefined when unbounded. */
export function describeRange(spec: ParamSpec): string | undefined {
  if (spec.choices !== undefined) return `one of ${spec.choices.map((c) => JSON.stringify(c)).join(", ")}`;
  if (spec.min === undefined && spec.max === undefined) return undefined;
  const lo = spec.min === undefined ? "(-inf" : `${spec.minExclusive ? "(" : "["}${spec.min}`;
  const hi = spec.max === undefined ? "inf)" : `${spec.max}${spec.maxExclusive ? ")" : "]"}`;
  return `${lo}, ${hi}`;
}

/** Check one value against its declaration (throws FusionError MERGE_INVALID). */
export function checkParam(spec: ParamSpec, value: ParamValue, where: ParamWhere): ParamValue {
  const name = spec.name;
  switch (spec.type) {
    case "boolean":
      if (typeof value !== "boolean") fail(where, name, `must be true or false, got ${JSON.stringify(value)}`);
      return value;
    case "string":
      if (typeof value !== "string") fail(where, name, `must be a string, got ${JSON.stringify(value)}`);
      if (spec.choices !== undefined && !spec.choices.includes(value)) {
        fail(where, name, `must be ${describeRange(spec)}, got ${JSON.stringify(value)}`);
      }
      return value;
    case "number":
    case "integer": {
      if (typeof value !== "number" || !Number.isFinite(value)) {
        fail(where, name, `must be a finite number, got ${JSON.stringify(value)}`);
      }
      if (spec.type === "integer" && !Number.isSafeInteger(value))
        fail(where, name, `must be an integer, got ${value}`);
      const below = spec.min !== undefined && (spec.minExclusive ? !(value > spec.min) : !(value >= spec.min));
      const above = spec.max !== undefined && (spec.maxExclusive ? !(value < spec.max) : !(value <= spec.max));
      if (below || above) fail(where, name, `must be in ${describeRange(spec)}, got ${value}`);
      return value;
    }
  }
}

/** Resolve `values` against `specs`: every declared name present, defaults filled, values checked. */
export function resolveParams(
  specs: readonly ParamSpec[],
  values: ParamValues | undefined,
  where: ParamWhere,
): ResolvedParams {
  const out: Record<string, ParamValue | null> = {};
  for (const spec of specs) {
    const v = values?.[spec.name];
    if (v === undefined || v === null) {
      if (spec.default === undefined) fail(where, spec.name, "is required");
      out[spec.name] = spec.default;
    } else out[spec.name] = checkParam(spec, v, where);
  }
  return out;
}

/** Names in `values` that `specs` does not declare (for config-level warnings; merges ignore them). */
export function unknownParams(specs: readonly ParamSpec[], values: ParamValues | undefined): string[] {
  if (values === undefined) return [];
  const known = new Set(specs.map((s) => s.name));
  return Object.keys(values).filter((k) => !known.has(k));
}

/** Typed readers for resolved parameters (the resolution above guarantees the type). */
export function num(p: ResolvedParams, name: string): number {
  return p[name] as number;
}
export function bool(p: ResolvedParams, name: string): boolean {
  return p[name] as boolean;
}
export function optNum(p: ResolvedParams, name: string): number | null {
  const v = p[name];
  return v === null || v === undefined ? null : (v as number);
}
