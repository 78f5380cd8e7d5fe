import { existsSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { FusionError } from "../errors.js";
import { ModelDir } from "../io/model-dir.js";

/** An input model of a merge: the config's reference, where it was found, its headers and config.json. */
export interface InputModel {
  readonly ref: string;
  readonly path: string;
  /** YAML path of the first place the config names it, for error messages. */
  readonly key: string;
  readonly dir: ModelDir;
  readonly config: Record<string, unknown> | undefined;
  readonly names: readonly string[];
}

/**
 * Resolve a model reference to a local directory: as given (relative to the working directory, as mergekit does),
 * then relative to the config file's folder. Hub names are not downloaded.
 */
export function resolveModelPath(ref: string, key: string, configSource: string | undefined): string {
  const candidates = [resolve(ref)];
  if (configSource !== undefined && !isAbsolute(ref)) candidates.push(resolve(dirname(configSource), ref));
  for (const c of candidates) if (existsSync(c)) return c;
  throw new FusionError(
    "FILE_NOT_FOUND",
    `model '${ref}' not found (looked in ${[...new Set(candidates)].join(" and ")}; fusionkit reads local Hugging Face model directories)`,
    { file: configSource, key },
  );
}

export function openInputModel(ref: string, key: string, configSource: string | undefined): InputModel {
  const path = resolveModelPath(ref, key, configSource);
  const dir = ModelDir.open(path);
  try {
    return { ref, path, key, dir, config: dir.config(), names: dir.stateDict.names() };
  } catch (e) {
    dir.close();
    throw e;
  }
}
