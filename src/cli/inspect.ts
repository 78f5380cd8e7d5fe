import type { Command } from "commander";
import { type InspectReport, inspect } from "../io/inspect.js";
import { formatBytes, formatCount, formatTable } from "../report/format.js";

export function formatInspect(r: InspectReport): string {
  const out: string[] = [];
  const layout =
    r.kind === "file"
      ? "single file"
      : r.index
        ? `${r.shards.length} shard(s) + ${r.index.file}`
        : `${r.shards.length} file (${r.shards[0]?.file})`;
  out.push(`${r.path}: ${layout}`);
  const arch = r.config?.architectures;
  if (r.config) {
    const layers = r.config.num_hidden_layers ?? r.config.n_layer;
    out.push(
      `config.json: ${Array.isArray(arch) ? arch.join(", ") : (r.config.model_type ?? "unknown architecture")}` +
        (layers !== undefined ? `, ${layers} layers` : ""),
    );
  }
  const dtypes = Object.entries(r.dtypes)
    .map(([d, n]) => `${d} ${formatCount(n)}`)
    .join(", ");
  out.push(
    `${r.tensors.length} tensors, ${formatCount(r.params)} parameters (${r.params}), ${formatBytes(r.bytes)}; ${dtypes}`,
  );
  if (r.metadata && Object.keys(r.metadata).length > 0) out.push(`metadata: ${JSON.stringify(r.metadata)}`);
  if (r.kind === "directory") {
    out.push("", "shards:");
    out.push(
      formatTable(
        ["file", "tensors", "bytes"],
        r.shards.map((s) => [s.file, String(s.tensors), formatBytes(s.bytes)]),
        new Set([1, 2]),
      ),
    );
  }
  out.push("", "tensors:");
  const showFile = r.shards.length > 1;
  out.push(
    formatTable(
      ["name", "dtype", "shape", "params", ...(showFile ? ["file"] : [])],
      r.tensors.map((t) => [
        t.name,
        t.dtype,
        `[${t.shape.join(", ")}]`,
        formatCount(t.params),
        ...(showFile ? [t.file] : []),
      ]),
      new Set([3]),
    ),
  );
  return out.join("\n");
}

export function registerInspect(program: Command): void {
  program
    .command("inspect")
    .description("list the tensors of a safetensors file or Hugging Face model directory (dtype, shape, size, shards)")
    .argument("<path>", "a .safetensors file or a model directory")
    .option("--json", "machine-readable output")
    .action((path: string, opts: { json?: boolean }) => {
      const report = inspect(path);
      process.stdout.write(`${opts.json ? JSON.stringify(report, null, 2) : formatInspect(report)}\n`);
    });
}
