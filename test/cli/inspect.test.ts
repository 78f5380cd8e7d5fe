import assert from "node:assert/strict";
import { mkdirSync, readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { before, describe, it } from "node:test";
import { main } from "../../src/cli/main.js";
import type { InspectReport } from "../../src/io/inspect.js";
import { saveSafetensors, type TensorSpec, tensorBytes } from "../../src/io/safetensors-write.js";
import { INDEX_FILE, SINGLE_FILE } from "../../src/io/sharded-write.js";
import { TINY_LLAMA, writeSyntheticLlama } from "../../src/synth/llama.js";
import { fromFloat32 } from "../../src/tensor/convert.js";
import { makeTensor, numel, type Tensor } from "../../src/tensor/tensor.js";
import { tempDir } from "../helpers/tmp.js";

class ExitCalled extends Error {
  constructor(readonly exitCode: number | undefined) {
    super(`process.exit(${exitCode}) called`);
  }
}

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  /** Set when the CLI called process.exit instead of returning its code (the stub throws instead of exiting). */
  exited: number | undefined;
}

/**
 * Run `main(argv)` in-process with stdout/stderr captured. Only string chunks are captured: the test runner's own
 * protocol (Buffers) passes through, so a report written while main awaits is not swallowed. process.exit is
 * stubbed to throw, so a CLI path that would end the process is seen rather than killing the test file.
 */
async function cli(argv: string[]): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const realOut = process.stdout.write;
  const realErr = process.stderr.write;
  const realExit = process.exit;
  // commander's help exits with process.exitCode, which the test runner sets to 1 once any test has failed.
  const realExitCode = process.exitCode;
  process.exitCode = undefined;
  let exited: number | undefined;
  const capture =
    (sink: string[], real: typeof process.stdout.write, stream: NodeJS.WriteStream) =>
    (chunk: unknown, ...rest: unknown[]): boolean => {
      if (typeof chunk !== "string") return (real as (...a: unknown[]) => boolean).call(stream, chunk, ...rest);
      sink.push(chunk);
      const cb = rest.find((r) => typeof r === "function") as (() => void) | undefined;
      cb?.();
      return true;
    };
  process.stdout.write = capture(out, realOut, process.stdout) as typeof process.stdout.write;
  process.stderr.write = capture(err, realErr, process.stderr) as typeof process.stderr.write;
  process.exit = ((code?: number) => {
    exited = code ?? 0;
    throw new ExitCalled(code);
  }) as typeof process.exit;
  let code: number;
  try {
    code = await main(argv);
  } finally {
    process.stdout.write = realOut;
    process.stderr.write = realErr;
    process.exit = realExit;
    process.exitCode = realExitCode;
  }
  return { code, stdout: out.join(""), stderr: err.join(""), exited };
}

/** Exactly one newline-terminated line. */
function assertOneLine(text: string, context: string): string {
  assert.ok(text.endsWith("\n"), `${context}: stderr does not end with a newline: ${JSON.stringify(text)}`);
  const lines = text.slice(0, -1).split("\n");
  assert.equal(lines.length, 1, `${context}: expected one line on stderr, got ${JSON.stringify(text)}`);
  return lines[0]!;
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

const SHAPE = { ...TINY_LLAMA, numLayers: 2 };

describe("fusionkit inspect", () => {
  const root = tempDir("cli-inspect");
  const file = join(root, "small.safetensors");
  const fileTensors: Array<[string, Tensor]> = [
    [
      "embed.weight",
      fromFloat32(
        new Float32Array(12).map((_, i) => i / 4),
        "F32",
        [4, 3],
      ),
    ],
    ["ids", makeTensor("I64", [5], new BigInt64Array([1n, 2n, 3n, 4n, 5n]))],
    ["scale", fromFloat32(new Float32Array([2]), "BF16", [])],
    ["empty", fromFloat32(new Float32Array(0), "F16", [0, 2])],
  ];
  const singleDir = join(root, "single");
  const shardedDir = join(root, "sharded");
  let specs: TensorSpec[] = [];
  let shardFiles: string[] = [];

  before(() => {
    saveSafetensors(file, fileTensors, { format: "pt" });
    specs = writeSyntheticLlama(singleDir, { shape: SHAPE, dtype: "BF16" }).specs;
    shardFiles = writeSyntheticLlama(shardedDir, { shape: SHAPE, dtype: "BF16", maxShardBytes: 80_000 }).files.filter(
      (f) => f.endsWith(".safetensors"),
    );
    assert.ok(shardFiles.length >= 3, `expected several shards, got ${shardFiles.join(", ")}`);
  });

  it("lists a single file: names, dtypes, shapes, counts", async () => {
    const r = await cli(["inspect", file]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    const lines = r.stdout.split("\n");
    assert.equal(lines[0], `${file}: single file`);
    const params = fileTensors.reduce((s, [, t]) => s + numel(t.shape), 0);
    assert.ok(r.stdout.includes(`4 tensors, `), r.stdout);
    assert.ok(r.stdout.includes(`(${params})`), r.stdout);
    assert.ok(r.stdout.includes('metadata: {"format":"pt"}'), r.stdout);
    for (const [name, t] of fileTensors) {
      const row = lines.find((l) => l.startsWith(`${name} `));
      assert.ok(row, `no row for ${name} in\n${r.stdout}`);
      assert.match(row, new RegExp(`\\s${t.dtype}\\s`), row);
      assert.ok(row.includes(shapeText(t.shape)), row);
    }
  });

  it("lists a sharded directory: shard layout, file column, config summary", async () => {
    const r = await cli(["inspect", shardedDir]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    const lines = r.stdout.split("\n");
    assert.equal(lines[0], `${shardedDir}: ${shardFiles.length} shard(s) + ${INDEX_FILE}`);
    assert.ok(r.stdout.includes(`config.json: LlamaForCausalLM, ${SHAPE.numLayers} layers`), r.stdout);
    const shardsAt = lines.indexOf("shards:");
    const tensorsAt = lines.indexOf("tensors:");
    assert.ok(shardsAt > 0 && tensorsAt > shardsAt, r.stdout);
    const shardRows = lines.slice(shardsAt + 2, tensorsAt - 1);
    assert.deepEqual(
      shardRows.map((l) => l.split(/\s+/)[0]),
      [...shardFiles].sort(),
    );
    const index = JSON.parse(readFileSync(join(shardedDir, INDEX_FILE), "utf8")) as {
      weight_map: Record<string, string>;
    };
    for (const s of specs) {
      const row = lines.slice(tensorsAt).find((l) => l.startsWith(`${s.name} `));
      assert.ok(row, `no row for ${s.name}`);
      assert.ok(row.includes(" BF16 ") && row.includes(shapeText(s.shape)), row);
      assert.ok(row.endsWith(index.weight_map[s.name]!), `${row} should end with its shard file`);
    }
  });

  it("lists a single-file directory", async () => {
    const r = await cli(["inspect", singleDir]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split("\n")[0], `${singleDir}: 1 file (${SINGLE_FILE})`);
    assert.ok(r.stdout.includes(`${specs.length} tensors`), r.stdout);
  });

  it("--json matches the model: tensors, params, bytes, shards, index", async () => {
    const r = await cli(["inspect", shardedDir, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    const rep = JSON.parse(r.stdout) as InspectReport;
    assert.equal(rep.kind, "directory");
    assert.equal(rep.path, shardedDir);
    assert.deepEqual(
      rep.tensors.map((t) => t.name),
      specs.map((s) => s.name),
    );
    const params = specs.reduce((s, x) => s + numel(x.shape), 0);
    const bytes = specs.reduce((s, x) => s + tensorBytes(x), 0);
    assert.equal(rep.params, params);
    assert.equal(rep.bytes, bytes);
    assert.deepEqual(rep.dtypes, { BF16: params });
    const index = JSON.parse(readFileSync(join(shardedDir, INDEX_FILE), "utf8")) as {
      weight_map: Record<string, string>;
    };
    for (const [i, s] of specs.entries()) {
      const t = rep.tensors[i]!;
      assert.equal(t.dtype, "BF16");
      assert.deepEqual(t.shape, [...s.shape]);
      assert.equal(t.params, numel(s.shape));
      assert.equal(t.bytes, tensorBytes(s));
      assert.equal(t.file, index.weight_map[s.name]);
    }
    assert.deepEqual(
      rep.shards.map((s) => s.file),
      [...shardFiles].sort(),
    );
    for (const s of rep.shards) {
      assert.equal(s.bytes, statSync(join(shardedDir, s.file)).size);
      assert.equal(s.tensors, rep.tensors.filter((t) => t.file === s.file).length);
    }
    assert.deepEqual(rep.index, { file: INDEX_FILE, totalSize: bytes });
    assert.deepEqual((rep.config as { architectures: string[] }).architectures, ["LlamaForCausalLM"]);
  });

  it("--json on a single file", async () => {
    const r = await cli(["inspect", file, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout) as InspectReport;
    assert.equal(rep.kind, "file");
    assert.deepEqual(
      rep.tensors.map((t) => [t.name, t.dtype, t.shape, t.file]),
      fileTensors.map(([n, t]) => [n, t.dtype, [...t.shape], basename(file)]),
    );
    assert.equal(
      rep.params,
      fileTensors.reduce((s, [, t]) => s + numel(t.shape), 0),
    );
    assert.equal(
      rep.bytes,
      fileTensors.reduce((s, [, t]) => s + t.data.byteLength, 0),
    );
    assert.deepEqual(rep.shards, [
      { file: basename(file), bytes: statSync(file).size, tensors: 4, metadata: { format: "pt" } },
    ]);
    assert.deepEqual(rep.metadata, { format: "pt" });
    assert.equal(rep.index, undefined);
  });

  it("bad input: non-zero exit, nothing on stdout, one line on stderr naming the path", async () => {
    const missing = join(root, "nope.safetensors");
    const truncated = join(root, "truncated.safetensors");
    writeFileSync(truncated, readFileSync(file));
    truncateSync(truncated, statSync(truncated).size - 3);
    const garbage = join(root, "garbage.safetensors");
    writeFileSync(garbage, "this is not a safetensors file at all");
    const emptyDir = join(root, "empty-dir");
    mkdirSync(emptyDir);
    const brokenShardDir = join(root, "broken-shard");
    const brokenFiles = writeSyntheticLlama(brokenShardDir, { shape: SHAPE, maxShardBytes: 80_000 }).files;
    const brokenShard = join(brokenShardDir, brokenFiles[1]!);
    truncateSync(brokenShard, 100);
    // [path, expected code, extra argv, the file the message must name]
    const cases: Array<[string, string, string[], string]> = [
      [missing, "FILE_NOT_FOUND", [], missing],
      [truncated, "SAFETENSORS_TRUNCATED", [], truncated],
      [garbage, "SAFETENSORS_HEADER", [], garbage],
      [emptyDir, "FILE_NOT_FOUND", [], emptyDir],
      [brokenShardDir, "SAFETENSORS_TRUNCATED", [], brokenShard],
      [missing, "FILE_NOT_FOUND", ["--json"], missing],
      [garbage, "SAFETENSORS_HEADER", ["--json"], garbage],
    ];
    for (const [path, code, extra, named] of cases) {
      const r = await cli(["inspect", path, ...extra]);
      assert.equal(r.exited, undefined, `${path}: process.exit was called; ${JSON.stringify(r)}`);
      assert.equal(r.code, 1, `${path}: ${JSON.stringify(r)}`);
      assert.equal(r.stdout, "", path);
      const line = assertOneLine(r.stderr, path);
      assert.ok(line.includes(named), `stderr does not name ${named}: ${line}`);
      assert.ok(line.includes(`[${code}]`), line);
      assert.ok(line.startsWith("fusionkit: error"), line);
    }
  });

  it("--help and --version return 0 from the root", async () => {
    const help = await cli(["--help"]);
    assert.equal(help.exited, undefined);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: fusionkit/);
    assert.match(help.stdout, /inspect/);
    const bare = await cli(["help"]);
    assert.equal(bare.code, 0, JSON.stringify(bare));
    assert.match(bare.stdout, /Usage: fusionkit/);
    const version = await cli(["-V"]);
    assert.equal(version.code, 0);
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    assert.equal(version.stdout.trim(), pkg.version);
  });

  it("usage errors at the root return non-zero", async () => {
    const r = await cli(["bogus-command"]);
    assert.equal(r.exited, undefined);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /unknown command 'bogus-command'/);
    const o = await cli(["--no-such-option"]);
    assert.notEqual(o.code, 0);
    assert.match(o.stderr, /unknown option/);
  });

  // Regression tests for bugs the first version of the reader and CLI had.

  it("inspect --help returns 0 (and does not exit the process)", async () => {
    const r = await cli(["inspect", "--help"]);
    assert.equal(r.exited, undefined, "process.exit was called");
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Usage: fusionkit inspect/);
    assert.match(r.stdout, /--json/);
    const h = await cli(["help", "inspect"]);
    assert.equal(h.exited, undefined, "process.exit was called");
    assert.equal(h.code, 0);
  });

  it("inspect usage errors return non-zero (and do not exit the process)", async () => {
    for (const argv of [["inspect"], ["inspect", "a", "b"], ["inspect", file, "--bogus"]]) {
      const r = await cli(argv);
      assert.equal(r.exited, undefined, `${argv.join(" ")}: process.exit was called`);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /error:/);
    }
  });

  it("an invalid multi-line index gives one line on stderr", async () => {
    const dir = join(root, "bad-index");
    writeSyntheticLlama(dir, { shape: SHAPE, maxShardBytes: 80_000 });
    writeFileSync(join(dir, INDEX_FILE), '{\n  "weight_map": {\n    "a": x\n  }\n}\n');
    const r = await cli(["inspect", dir]);
    assert.equal(r.code, 1);
    const line = assertOneLine(r.stderr, dir);
    assert.ok(line.includes(join(dir, INDEX_FILE)), line);
  });

  it("a model.safetensors that is a directory gives a typed one-line error naming it", async () => {
    const dir = join(root, "dir-as-file");
    mkdirSync(join(dir, SINGLE_FILE), { recursive: true });
    const r = await cli(["inspect", dir]);
    assert.equal(r.code, 1);
    const line = assertOneLine(r.stderr, dir);
    assert.ok(line.includes(join(dir, SINGLE_FILE)), line);
  });
});
