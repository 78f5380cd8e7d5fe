/**
 * Reading a mergekit YAML config: YAML (with `<<:` merge keys, duplicate keys refused) -> zod schema -> the checks a
 * schema cannot express (models xor slices, equal slice lengths, dtype names, tokenizer, LoRA references).
 * Every error is a FusionError whose key is the YAML path (`models[1].parameters.density`) and whose message says
 * what was expected and, where known, the line and column.
 */
import { readFileSync } from "node:fs";
import { LineCounter, parseDocument } from "yaml";
import { FusionError, type FusionErrorCode } from "../errors.js";
import { dtypeFromConfig } from "./dtype.js";
import {
  type ConfigProblem,
  formatIssues,
  formatPath,
  mergeConfigSchema,
  type PathSegment,
  type RawMergeConfig,
} from "./schema.js";
import type {
  ConditionalParameter,
  InputModelDefinition,
  InputSliceDefinition,
  MergeConfig,
  OutputSliceDefinition,
  ParameterSetting,
  Parameters,
} from "./types.js";

/** Maps a YAML path to " (line L, column C)" of the node there (or its nearest present parent), or "". */
type Locate = (path: readonly PathSegment[]) => string;

/** Re-exported: the engine normalises dtype names through the parser's module. */
export { dtypeFromConfig } from "./dtype.js";

/** How many schema problems one error message lists. */
const MAX_REPORTED = 5;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function readYaml(text: string, file: string | undefined): { raw: unknown; locate: Locate } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, merge: true, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number): string => {
    const { line, col } = lines.linePos(offset);
    return `line ${line}, column ${col}`;
  };
  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length > 0) {
    const e = problems[0]!;
    throw new FusionError("CONFIG_INVALID", `YAML error at ${at(e.pos[0])}: ${e.message}`, { file });
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 1000 });
  } catch (cause) {
    throw new FusionError("CONFIG_INVALID", `YAML error: ${(cause as Error).message}`, { file, cause });
  }
  const locate: Locate = (path) => {
    // the nearest node that exists (a missing key points at its mapping), but never the whole document
    for (let n = path.length; n >= 1; n--) {
      const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
      if (node && typeof node === "object" && node.range) return ` (${at(node.range[0])})`;
    }
    return "";
  };
  return { raw, locate };
}

/**
 * Parses and validates a mergekit merge configuration.
 * @param text the YAML text
 * @param file where it came from, named in errors and kept as `source`
 * @throws FusionError CONFIG_INVALID (bad YAML or schema) or NOT_SUPPORTED (valid mergekit, not implemented here)
 */
export function parseMergeConfig(text: string, file?: string): MergeConfig {
  const { raw, locate } = readYaml(text, file);
  const fail = (code: FusionErrorCode, path: PathSegment[], message: string): never => {
    throw new FusionError(code, `${message}${locate(path)}`, { file, key: path.length ? formatPath(path) : undefined });
  };
  if (!isPlainObject(raw)) {
    return fail("CONFIG_INVALID", [], "expected a mapping at the top level (merge_method:, models: or slices:, ...)");
  }
  if ("modules" in raw) {
    fail("NOT_SUPPORTED", ["modules"], "modules: (per-module merges) is not supported yet; use models: or slices:");
  }
  const parsed = mergeConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = formatIssues(parsed.error.issues, raw);
    const first = problems[0]!;
    const key = first.path.length ? formatPath(first.path) : undefined;
    const others = moreProblems(problems, locate);
    throw new FusionError("CONFIG_INVALID", `${first.message}${locate(first.path)}${others}`, { file, key });
  }
  return buildConfig(parsed.data!, file, fail);
}

function moreProblems(problems: ConfigProblem[], locate: Locate): string {
  const rest = problems
    .slice(1, MAX_REPORTED)
    .map((p) => `; also ${formatPath(p.path) || "top level"}: ${p.message}${locate(p.path)}`);
  const unlisted = problems.length - MAX_REPORTED;
  return rest.join("") + (unlisted > 0 ? `; and ${unlisted} more` : "");
}

/** Reads and parses a config file; errors name the file. */
export function loadMergeConfig(path: string): MergeConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    const missing = (cause as NodeJS.ErrnoException).code === "ENOENT";
    throw new FusionError(missing ? "FILE_NOT_FOUND" : "IO_ERROR", missing ? "no such file" : "cannot read config", {
      file: path,
      cause,
    });
  }
  return parseMergeConfig(text, path);
}

type Fail = (code: FusionErrorCode, path: PathSegment[], message: string) => never;

function checkModelRef(ref: string, path: PathSegment[], fail: Fail): string {
  if (ref.includes("+")) {
    fail(
      "NOT_SUPPORTED",
      path,
      `'${ref}': LoRA adapters (model+lora) are not supported yet; merge the adapter into its model and reference that`,
    );
  }
  return ref;
}

function cleanParameters(p: Record<string, unknown> | null | undefined): Parameters | undefined {
  if (p === null || p === undefined) return undefined;
  const out: Parameters = {};
  for (const [name, setting] of Object.entries(p)) out[name] = cleanSetting(setting);
  return out;
}

/** Drops `filter: null` (mergekit's "no filter") so a conditional has `filter` only when it filters. */
function cleanSetting(s: unknown): ParameterSetting {
  const cond = (c: Record<string, unknown>): ConditionalParameter =>
    c.filter === null || c.filter === undefined
      ? { value: c.value as ConditionalParameter["value"] }
      : { filter: c.filter as string, value: c.value as ConditionalParameter["value"] };
  if (isPlainObject(s)) return cond(s);
  if (Array.isArray(s) && s.length > 0 && isPlainObject(s[0])) return s.map((c) => cond(c as Record<string, unknown>));
  return s as ParameterSetting;
}

function buildConfig(raw: RawMergeConfig, file: string | undefined, fail: Fail): MergeConfig {
  const hasModels = raw.models !== null && raw.models !== undefined;
  const hasSlices = raw.slices !== null && raw.slices !== undefined;
  if (hasModels && hasSlices) {
    fail("CONFIG_INVALID", ["slices"], "a config has either models: or slices:, not both");
  }
  if (!hasModels && !hasSlices) {
    fail("CONFIG_INVALID", [], "expected models: (whole models to merge) or slices: (layer ranges); found neither");
  }

  const config: MergeConfig = { merge_method: raw.merge_method };
  if (raw.base_model != null) config.base_model = checkModelRef(raw.base_model, ["base_model"], fail);

  if (raw.models) {
    config.models = raw.models.map((m, i): InputModelDefinition => {
      const def: InputModelDefinition = { model: checkModelRef(m.model, ["models", i, "model"], fail) };
      const parameters = cleanParameters(m.parameters);
      if (parameters) def.parameters = parameters;
      return def;
    });
  }

  if (raw.slices) {
    config.slices = raw.slices.map((s, i): OutputSliceDefinition => {
      const [start0, end0] = s.sources[0]!.layer_range;
      const sources = s.sources.map((src, j): InputSliceDefinition => {
        const path: PathSegment[] = ["slices", i, "sources", j];
        const [start, end] = src.layer_range;
        if (end - start !== end0 - start0) {
          fail(
            "CONFIG_INVALID",
            [...path, "layer_range"],
            `spans ${end - start} layers but sources[0] spans ${end0 - start0}; all sources of a slice must span the same number of layers`,
          );
        }
        const def: InputSliceDefinition = {
          model: checkModelRef(src.model, [...path, "model"], fail),
          layer_range: [start, end],
        };
        const parameters = cleanParameters(src.parameters);
        if (parameters) def.parameters = parameters;
        return def;
      });
      const out: OutputSliceDefinition = { sources };
      if (s.base_model != null) out.base_model = checkModelRef(s.base_model, ["slices", i, "base_model"], fail);
      if (s.residual_weight != null) out.residual_weight = s.residual_weight;
      const parameters = cleanParameters(s.parameters);
      if (parameters) out.parameters = parameters;
      return out;
    });
  }

  const parameters = cleanParameters(raw.parameters);
  if (parameters) config.parameters = parameters;
  if (raw.dtype != null) config.dtype = dtypeFromConfig(raw.dtype, "dtype", file);
  if (raw.out_dtype != null) config.out_dtype = dtypeFromConfig(raw.out_dtype, "out_dtype", file);
  const tokenizerSource = resolveTokenizerSource(raw, fail);
  if (tokenizerSource !== undefined) config.tokenizer_source = tokenizerSource;
  if (raw.chat_template != null) config.chat_template = raw.chat_template;
  if (file !== undefined) config.source = file;
  return config;
}

/** `tokenizer_source:`, or a `tokenizer:` block that only names a source; union and per-token settings are refused. */
function resolveTokenizerSource(raw: RawMergeConfig, fail: Fail): string | undefined {
  let source = raw.tokenizer_source ?? undefined;
  let path: PathSegment[] = ["tokenizer_source"];
  const block = raw.tokenizer;
  if (block != null) {
    if (source !== undefined)
      fail("CONFIG_INVALID", ["tokenizer"], "set either tokenizer_source: or tokenizer:, not both");
    if (block.tokens != null && Object.keys(block.tokens).length > 0) {
      fail("NOT_SUPPORTED", ["tokenizer", "tokens"], "per-token embedding settings are not supported yet");
    }
    if (block.pad_to_multiple_of != null) {
      fail("NOT_SUPPORTED", ["tokenizer", "pad_to_multiple_of"], "vocabulary padding is not supported yet");
    }
    path = block.source == null ? ["tokenizer"] : ["tokenizer", "source"];
    source = block.source ?? "union"; // mergekit's default
  }
  if (source === "union") {
    const what = path[0] === "tokenizer_source" ? "tokenizer_source: union" : "tokenizer.source: union (the default)";
    fail(
      "NOT_SUPPORTED",
      path,
      `${what} is not supported yet; use base or the name of the model whose tokenizer to keep`,
    );
  }
  if (source !== undefined && source !== "base") checkModelRef(source, path, fail);
  return source;
}
