import type { Command } from "commander";
import { describeRange } from "../merge/params.js";
import { getMethod, listMethods } from "../merge/registry.js";
import type { MergeMethodSpec, ParamSpec } from "../merge/types.js";
import { formatTable } from "../report/format.js";

function paramRows(kind: string, params: readonly ParamSpec[]): string[][] {
  return params.map((p) => [
    p.name,
    kind,
    p.type,
    p.default === undefined ? "required" : p.default === null ? "(none)" : String(p.default),
    describeRange(p) ?? "",
    p.description,
  ]);
}

export function formatMethod(m: MergeMethodSpec): string {
  const base = { required: "required", optional: "optional", unused: "not used (pass it as a model)" }[m.base];
  const models = m.models.max === undefined ? `at least ${m.models.min}` : `${m.models.min} to ${m.models.max}`;
  const rows = [...paramRows("global", m.parameters), ...paramRows("per model", m.modelParameters)];
  return [
    `${m.name}: ${m.title}`,
    `  ${m.reference}`,
    `  semantics of ${m.mergekitRef}`,
    `  base model: ${base}; models besides the base: ${models}${m.random ? "; random (--random-seed)" : ""}`,
    "",
    rows.length === 0
      ? "  no parameters"
      : formatTable(["parameter", "scope", "type", "default", "range", "meaning"], rows),
  ].join("\n");
}

export function registerMethods(program: Command): void {
  program
    .command("methods")
    .description("list the merge methods, or show one method's parameters")
    .argument("[name]", "a method name")
    .option("--json", "machine-readable output")
    .action((name: string | undefined, opts: { json?: boolean }) => {
      const methods = name === undefined ? listMethods() : [getMethod(name)];
      if (opts.json) {
        const plain = methods.map(({ merge: _merge, elementwise: _e, streaming: _s, ...spec }) => spec);
        process.stdout.write(`${JSON.stringify(name === undefined ? plain : plain[0], null, 2)}\n`);
      } else if (name === undefined) {
        const rows = methods.map((m) => [
          m.name,
          m.base === "required" ? "yes" : m.base === "optional" ? "optional" : "",
          m.title,
        ]);
        process.stdout.write(
          `${formatTable(["method", "base", "title"], rows)}\n\nfusionkit methods NAME shows a method's parameters.\n`,
        );
      } else process.stdout.write(`${formatMethod(methods[0]!)}\n`);
    });
}
