/**
 * Checkpoints as plain safetensors state dicts plus a JSON sidecar beside them (`x.safetensors` -> `x.json`): what
 * the weights are (arch + config, or head shape), which task, how they were trained, a cache key, metrics. Both files
 * are written atomically, safetensors first, so a sidecar never describes weights that are not there.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { FusionError } from "../errors.js";
import { writeFileAtomic } from "../io/atomic.js";
import { readTextFile } from "../io/file-read.js";
import { loadParams, saveParams } from "../nn/models/checkpoint.js";
import type { ParamSpec, Params } from "../nn/models/types.js";

export interface CheckpointSidecar {
  format: "fusionkit-checkpoint/1";
  kind: "backbone" | "head";
  /** Hash of everything that determined these weights (zoo caching). */
  key?: string;
  arch?: string;
  config?: unknown;
  task?: string;
  numClasses?: number;
  featureDim?: number;
  steps?: number;
  seconds?: number;
  train?: unknown;
  metrics?: Record<string, unknown>;
  [extra: string]: unknown;
}

export function sidecarPath(path: string): string {
  return path.endsWith(".safetensors") ? `${path.slice(0, -".safetensors".length)}.json` : `${path}.json`;
}

/** A stable hash of a JSON-able description (object keys sorted). */
export function artifactKey(description: unknown): string {
  const canon = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(canon);
    if (v !== null && typeof v === "object")
      return Object.fromEntries(
        Object.keys(v as object)
          .sort()
          .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
          .map((k) => [k, canon((v as Record<string, unknown>)[k])]),
      );
    return v;
  };
  return createHash("sha256")
    .update(JSON.stringify(canon(description)))
    .digest("hex")
    .slice(0, 16);
}

export function writeCheckpoint(path: string, params: Params, sidecar: CheckpointSidecar): void {
  saveParams(path, params, {
    format: sidecar.format,
    kind: sidecar.kind,
    ...(sidecar.task ? { task: sidecar.task } : {}),
  });
  writeFileAtomic(sidecarPath(path), `${JSON.stringify(sidecar, null, 2)}\n`);
}

export function readSidecar(path: string): CheckpointSidecar {
  const file = sidecarPath(path);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readTextFile(file));
  } catch (e) {
    if (e instanceof FusionError) throw e;
    throw new FusionError("CHECKPOINT_INVALID", `sidecar is not valid JSON: ${(e as Error).message}`, { file });
  }
  const s = parsed as CheckpointSidecar;
  if (s === null || typeof s !== "object" || s.format !== "fusionkit-checkpoint/1")
    throw new FusionError("CHECKPOINT_INVALID", "not a fusionkit checkpoint sidecar (format fusionkit-checkpoint/1)", {
      file,
    });
  if (s.kind !== "backbone" && s.kind !== "head")
    throw new FusionError("CHECKPOINT_INVALID", `kind must be backbone or head, got ${JSON.stringify(s.kind)}`, {
      file,
      key: "kind",
    });
  return s;
}

/**
 * The checkpoint at `path` when it exists and (with `key`) its sidecar carries that key; undefined otherwise.
 * A checkpoint that exists but does not load is an error, not a cache miss.
 */
export function readCheckpoint(
  path: string,
  specs: readonly ParamSpec[],
  key?: string,
): { params: Params; sidecar: CheckpointSidecar } | undefined {
  if (!existsSync(path) || !existsSync(sidecarPath(path))) return undefined;
  const sidecar = readSidecar(path);
  if (key !== undefined && sidecar.key !== key) return undefined;
  return { params: loadParams(path, { params: [...specs] }), sidecar };
}
