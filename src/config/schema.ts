/**
 * The zod schema of a mergekit YAML config, with messages written for the person who wrote the YAML.
 *
 * Every object is strict (an unknown key is an error). Parameter settings are checked by hand inside the schema because
 * their union (scalar | gradient | conditional | list of conditionals) deserves a more precise message than a failed
 * union gives. `formatIssues` turns zod's issues into `models[1].parameters.density: expected ...` lines.
 */
import { z } from "zod";
import { editDistance } from "../errors.js";

export type PathSegment = string | number;

const KINDS = "a number, boolean, string, list of numbers (a gradient) or {filter, value} entries";

export function unknownKeysMessage(keys: readonly string[], allowed: readonly string[]): string {
  const hints = keys.map((k) => {
    const near =
      allowed.find((a) => editDistance(k, a) <= 2) ??
      allowed.find((a) => k.length >= 3 && (a.startsWith(k) || k.startsWith(a)));
    return near === undefined ? `'${k}'` : `'${k}' (did you mean '${near}'?)`;
  });
  const noun = keys.length === 1 ? "unknown key" : "unknown keys";
  return `${noun} ${hints.join(", ")}; expected one of: ${allowed.join(", ")}`;
}

/** A strict object whose errors say what was expected and which keys are allowed. */
function strict<T extends z.ZodRawShape>(shape: T, what: string) {
  const allowed = Object.keys(shape);
  return z.strictObject(shape, {
    error: (iss) => {
      if (iss.code === "unrecognized_keys") return unknownKeysMessage(iss.keys, allowed);
      if (iss.code === "invalid_type") return `expected ${what}`;
      return undefined;
    },
  });
}

// ---- parameter settings (checked by hand, see the file comment) ----

interface Problem {
  path: PathSegment[];
  message: string;
  got?: boolean;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function numberProblem(v: number, path: PathSegment[]): Problem | undefined {
  return Number.isFinite(v) ? undefined : { path, message: "expected a finite number", got: true };
}

function gradientProblem(list: unknown[], path: PathSegment[]): Problem | undefined {
  if (list.length === 0) return { path, message: "expected a non-empty list" };
  for (let i = 0; i < list.length; i++) {
    const e = list[i];
    if (typeof e !== "number") {
      return { path: [...path, i], message: "expected a number (a gradient lists only numbers)", got: true };
    }
    const p = numberProblem(e, [...path, i]);
    if (p) return p;
  }
  return undefined;
}

/** The `value` of a conditional: a scalar or a gradient, never another conditional. */
function valueProblem(v: unknown, path: PathSegment[]): Problem | undefined {
  if (typeof v === "number") return numberProblem(v, path);
  if (typeof v === "boolean" || typeof v === "string") return undefined;
  if (Array.isArray(v)) return gradientProblem(v, path);
  if (v === undefined) return { path, message: "required key is missing; expected a number, boolean, string or list" };
  return { path, message: "expected a number, boolean, string or list of numbers", got: true };
}

function conditionalProblem(v: Record<string, unknown>, path: PathSegment[]): Problem | undefined {
  const extra = Object.keys(v).filter((k) => k !== "filter" && k !== "value");
  if (extra.length > 0) {
    return {
      path: extra.length === 1 ? [...path, extra[0]!] : path,
      message: unknownKeysMessage(extra, ["filter", "value"]),
    };
  }
  const filter = v.filter;
  if (filter !== undefined && filter !== null && typeof filter !== "string") {
    return { path: [...path, "filter"], message: "expected a string (part of a tensor name, or *)", got: true };
  }
  return valueProblem(v.value, [...path, "value"]);
}

/** What is wrong with one parameter setting, or undefined when it is fine. */
export function settingProblem(v: unknown, path: PathSegment[] = []): Problem | undefined {
  if (typeof v === "number") return numberProblem(v, path);
  if (typeof v === "boolean" || typeof v === "string") return undefined;
  if (isPlainObject(v)) return conditionalProblem(v, path);
  if (!Array.isArray(v)) return { path, message: `expected ${KINDS}`, got: true };
  if (v.length === 0) return { path, message: `expected a non-empty list (${KINDS})` };
  if (typeof v[0] === "number") return gradientProblem(v, path);
  if (isPlainObject(v[0])) {
    for (let i = 0; i < v.length; i++) {
      const e = v[i];
      if (!isPlainObject(e)) {
        return {
          path: [...path, i],
          message: "expected a {filter, value} entry like the others in this list",
          got: true,
        };
      }
      const p = conditionalProblem(e, [...path, i]);
      if (p) return p;
    }
    return undefined;
  }
  return { path: [...path, 0], message: "expected a number (a gradient) or a {filter, value} entry", got: true };
}

const setting = z.unknown().superRefine((v, ctx) => {
  const p = settingProblem(v);
  if (p) ctx.addIssue({ code: "custom", message: p.message, path: p.path, input: v, params: { got: p.got === true } });
});

const parameters = z.record(z.string(), setting, { error: "expected a mapping of parameter names to values" });

// ---- the config ----

const modelRef = z
  .string({ error: "expected a model name or path (a string)" })
  .min(1, { error: "expected a non-empty model name or path" });

const LAYER_RANGE = "expected [start, end]: two non-negative integers";
const layerIndex = z.number({ error: LAYER_RANGE }).int({ error: LAYER_RANGE }).min(0, { error: LAYER_RANGE });
const layerRange = z
  .tuple([layerIndex, layerIndex], { error: LAYER_RANGE })
  .refine(([start, end]) => start <= end, { error: "expected start <= end in [start, end]" });

const inputModel = strict(
  { model: modelRef, parameters: parameters.nullish() },
  "a mapping with model: and parameters:",
);

const inputSlice = strict(
  { model: modelRef, layer_range: layerRange, parameters: parameters.nullish() },
  "a mapping with model:, layer_range: and parameters:",
);

const outputSlice = strict(
  {
    sources: z
      .array(inputSlice, { error: "expected a list of sources" })
      .min(1, { error: "expected at least one source" }),
    base_model: modelRef.nullish(),
    residual_weight: z.number({ error: "expected a number" }).nullish(),
    parameters: parameters.nullish(),
  },
  "a mapping with sources:",
);

const tokenizerBlock = strict(
  {
    source: z.string({ error: "expected union, base or a model name" }).nullish(),
    tokens: z.record(z.string(), z.unknown(), { error: "expected a mapping of tokens" }).nullish(),
    pad_to_multiple_of: z.number({ error: "expected an integer" }).int({ error: "expected an integer" }).nullish(),
  },
  "a mapping with source:, tokens: and pad_to_multiple_of:",
);

const dtypeName = z.string({ error: "expected a dtype name such as bfloat16, float16 or float32" });

export const mergeConfigSchema = strict(
  {
    merge_method: z
      .string({ error: "expected the name of a merge method (a string)" })
      .min(1, { error: "expected the name of a merge method" }),
    base_model: modelRef.nullish(),
    models: z
      .array(inputModel, { error: "expected a list of models" })
      .min(1, { error: "expected at least one model" })
      .nullish(),
    slices: z
      .array(outputSlice, { error: "expected a list of slices" })
      .min(1, { error: "expected at least one slice" })
      .nullish(),
    parameters: parameters.nullish(),
    dtype: dtypeName.nullish(),
    out_dtype: dtypeName.nullish(),
    tokenizer_source: z.string({ error: "expected union, base or a model name" }).nullish(),
    tokenizer: tokenizerBlock.nullish(),
    chat_template: z.string({ error: "expected a template name or a Jinja template (a string)" }).nullish(),
  },
  "a mapping (the merge configuration)",
);

export type RawMergeConfig = z.output<typeof mergeConfigSchema>;

// ---- messages ----

/** `["models", 1, "parameters", "density"]` -> `models[1].parameters.density` */
export function formatPath(path: readonly PathSegment[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(seg)) out += out === "" ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

export function valueAt(root: unknown, path: readonly PathSegment[]): unknown {
  let v = root;
  for (const seg of path) {
    if (typeof v !== "object" || v === null) return undefined;
    v = (v as Record<PathSegment, unknown>)[seg];
  }
  return v;
}

export function describeValue(v: unknown): string {
  if (v === null) return "an empty value";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "string") return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  return `${typeof v} ${String(v)}`;
}

export interface ConfigProblem {
  path: PathSegment[];
  message: string;
}

/** One readable problem per zod issue: the YAML path (down to an unknown key) and what was expected. */
export function formatIssues(issues: readonly z.core.$ZodIssue[], raw: unknown): ConfigProblem[] {
  // an unknown key usually explains the rest (a misspelt required key is also "missing"), so it is reported first
  const ordered = [
    ...issues.filter((iss) => iss.code === "unrecognized_keys"),
    ...issues.filter((iss) => iss.code !== "unrecognized_keys"),
  ];
  return ordered.map((iss) => {
    let path = iss.path.filter((s): s is PathSegment => typeof s !== "symbol");
    if (iss.code === "unrecognized_keys" && iss.keys.length === 1) path = [...path, iss.keys[0]!];
    const got = valueAt(raw, path);
    let message = iss.message;
    const wantsGot =
      iss.code === "invalid_type" ||
      ((iss.code === "too_small" || iss.code === "too_big") && iss.origin === "number") ||
      (iss.code === "custom" && iss.params?.got === true);
    if (iss.code === "invalid_type" && got === undefined) message = `required key is missing; ${message}`;
    else if (wantsGot) message = `${message}, got ${describeValue(got)}`;
    return { path, message };
  });
}
