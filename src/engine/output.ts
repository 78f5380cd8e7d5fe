import { copyFileSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import type { MergeConfig } from "../config/types.js";
import { FusionError } from "../errors.js";
import { writeFileAtomic } from "../io/atomic.js";
import type { MergePlan } from "./plan.js";

/** Tokenizer files copied from the tokenizer model, when present. */
export const TOKENIZER_FILES = [
  "tokenizer_config.json",
  "special_tokens_map.json",
  "tokenizer.json",
  "tokenizer.model",
  "added_tokens.json",
  "merges.txt",
  "vocab.json",
  "chat_template.jinja",
  "chat_template.json",
];

/** Files copied from the donor (base) model whatever the tokenizer setting. */
export const TAGALONG_FILES = ["generation_config.json"];

export function copyTokenizerFiles(plan: MergePlan, dir: string, chatTemplate: string | undefined): string[] {
  const src = plan.models[plan.tokenizerModel]!.path;
  const copied: string[] = [];
  for (const f of TOKENIZER_FILES) {
    if (existsSync(join(src, f))) {
      copyFileSync(join(src, f), join(dir, f));
      copied.push(f);
    }
  }
  if (chatTemplate !== undefined) {
    const template = resolveChatTemplate(plan, chatTemplate);
    const cfgPath = join(dir, "tokenizer_config.json");
    const cfg = existsSync(cfgPath) ? (JSON.parse(readFileSync(cfgPath, "utf8")) as Record<string, unknown>) : {};
    cfg.chat_template = template;
    writeFileAtomic(cfgPath, `${JSON.stringify(cfg, null, 2)}\n`);
    if (!copied.includes("tokenizer_config.json")) copied.push("tokenizer_config.json");
  }
  return copied;
}

/** `auto` takes the most common template of the input models; anything else must be a Jinja template. */
function resolveChatTemplate(plan: MergePlan, value: string): string {
  if (value === "auto") {
    const counts = new Map<string, number>();
    for (const m of plan.models) {
      const p = join(m.path, "tokenizer_config.json");
      if (!existsSync(p)) continue;
      const t = (JSON.parse(readFileSync(p, "utf8")) as { chat_template?: unknown }).chat_template;
      if (typeof t === "string") counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    const best = [...counts].sort((a, b) => b[1] - a[1])[0];
    if (best === undefined) {
      throw new FusionError("CONFIG_INVALID", "chat_template: auto, but no input model has a chat template", {
        key: "chat_template",
      });
    }
    return best[0];
  }
  if (!value.includes("{{") && !value.includes("{%")) {
    throw new FusionError(
      "NOT_SUPPORTED",
      `chat_template '${value}': built-in template names are not supported yet; give a Jinja template or 'auto'`,
      { key: "chat_template" },
    );
  }
  return value;
}

export function copyTagalongFiles(plan: MergePlan, dir: string): string[] {
  const src = plan.models[plan.donor]!.path;
  return TAGALONG_FILES.filter((f) => {
    if (!existsSync(join(src, f)) || existsSync(join(dir, f))) return false;
    copyFileSync(join(src, f), join(dir, f));
    return true;
  });
}

/** The config as YAML: the file's own text when it came from one (comments kept), else serialised. */
export function configText(config: MergeConfig): string {
  if (config.source !== undefined && existsSync(config.source)) return readFileSync(config.source, "utf8");
  const { source: _source, ...rest } = config;
  return stringify(rest);
}

/** A Hugging Face model card with YAML front matter. */
export function modelCard(plan: MergePlan, config: MergeConfig): string {
  const base = config.base_model;
  const front: Record<string, unknown> = {
    base_model: [...new Set(plan.models.map((m) => m.ref))],
    library_name: "transformers",
    tags: ["merge", "fusionkit", plan.method.name],
  };
  const lines = [
    "---",
    stringify(front).trimEnd(),
    "---",
    "# Merged model",
    "",
    `This model was made with [fusionkit](https://www.npmjs.com/package/fusionkit) using the **${plan.method.title}** ` +
      `method (\`${plan.method.name}\`; ${plan.method.reference}).`,
    "",
    "## Models merged",
    "",
    ...plan.models.map((m) => `- ${m.ref}${m.ref === base ? " (base)" : ""}`),
    "",
    "## Configuration",
    "",
    "```yaml",
    configText(config).trimEnd(),
    "```",
    "",
  ];
  return lines.join("\n");
}

/** A temporary directory beside `out`, renamed over it once complete. */
export function tempDirFor(out: string): string {
  return `${out.replace(/\/+$/, "")}.fusionkit-tmp-${process.pid}-${Date.now().toString(36)}`;
}

export function checkOutput(out: string, force: boolean): void {
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) {
    throw new FusionError("INVALID_ARGUMENT", "output path exists and is not a directory", { file: out });
  }
  if (readdirSync(out).length > 0 && !force) {
    throw new FusionError("INVALID_ARGUMENT", "output directory exists and is not empty (pass --force to replace it)", {
      file: out,
    });
  }
}

/** Move the finished temporary directory into place, replacing an existing output only at the last moment. */
export function publishDir(tmp: string, out: string): void {
  if (existsSync(out)) {
    const old = `${tmp}-old`;
    renameSync(out, old);
    renameSync(tmp, out);
    rmSync(old, { recursive: true, force: true });
  } else renameSync(tmp, out);
}
