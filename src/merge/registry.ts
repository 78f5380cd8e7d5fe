// The registry of merge methods: lookup by name, the list of names, and "did you mean" for typos.

import { editDistance, FusionError } from "../errors.js";
import { breadcrumbs } from "./methods/breadcrumbs.js";
import { breadcrumbsTies } from "./methods/breadcrumbs_ties.js";
import { dareLinear } from "./methods/dare_linear.js";
import { dareTies } from "./methods/dare_ties.js";
import { della } from "./methods/della.js";
import { dellaLinear } from "./methods/della_linear.js";
import { karcher } from "./methods/karcher.js";
import { linear } from "./methods/linear.js";
import { modelStock } from "./methods/model_stock.js";
import { multislerp } from "./methods/multislerp.js";
import { nearswap } from "./methods/nearswap.js";
import { nuslerp } from "./methods/nuslerp.js";
import { passthrough } from "./methods/passthrough.js";
import { sce } from "./methods/sce.js";
import { slerp } from "./methods/slerp.js";
import { taskArithmetic } from "./methods/task_arithmetic.js";
import { ties } from "./methods/ties.js";
import type { MergeMethodSpec } from "./types.js";

const METHODS: readonly MergeMethodSpec[] = [
  linear,
  slerp,
  nuslerp,
  multislerp,
  karcher,
  taskArithmetic,
  ties,
  dareTies,
  dareLinear,
  breadcrumbs,
  breadcrumbsTies,
  della,
  dellaLinear,
  modelStock,
  sce,
  nearswap,
  passthrough,
];

const BY_NAME: ReadonlyMap<string, MergeMethodSpec> = new Map(METHODS.map((m) => [m.name, m]));

/** Names of all registered methods, in registry order. */
export function methodNames(): string[] {
  return METHODS.map((m) => m.name);
}

/** All registered method specs. */
export function listMethods(): readonly MergeMethodSpec[] {
  return METHODS;
}

export function hasMethod(name: string): boolean {
  return BY_NAME.has(name);
}

/** The registered name closest to `name` (case-, dash- and space-insensitive), if reasonably close. */
export function suggestMethod(name: string): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-\s]+/g, "_");
  const q = norm(name);
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const m of METHODS) {
    const d = editDistance(q, m.name);
    if (d < bestD) {
      bestD = d;
      best = m.name;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(q.length / 3)) ? best : undefined;
}

/**
 * The spec of `name`; throws FusionError MERGE_INVALID (with a suggestion when one is close) otherwise.
 * `file` (e.g. the config path) is recorded in the error's context.
 */
export function getMethod(name: string, file?: string): MergeMethodSpec {
  const m = BY_NAME.get(name);
  if (m !== undefined) return m;
  const hint = suggestMethod(name);
  throw new FusionError(
    "MERGE_INVALID",
    `unknown merge method '${name}'${hint === undefined ? "" : `; did you mean '${hint}'?`} ` +
      `(known: ${methodNames().join(", ")})`,
    { key: "merge_method", file },
  );
}
