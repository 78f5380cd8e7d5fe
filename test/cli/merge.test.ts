import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { writeModelSet } from "../helpers/models.js";
import { tempDir } from "../helpers/tmp.js";

const MAIN = resolve(fileURLToPath(import.meta.url), "../../../src/cli/main.ts");
const root = tempDir("cli-merge");
writeModelSet(root, { n: 2 });

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ["--import", import.meta.resolve("tsx"), MAIN, ...args], {
    encoding: "utf8",
    cwd: root,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function config(name: string, yaml: string): string {
  const path = join(root, name);
  writeFileSync(path, yaml);
  return path;
}

const TIES =
  "merge_method: ties\nbase_model: base\nparameters: {density: 0.5, weight: 0.5}\nmodels:\n  - model: ft1\n  - model: ft2\n";

describe("fusionkit merge (CLI)", () => {
  it("merges, printing plain progress lines off a TTY and a summary", () => {
    const r = cli("merge", config("ties.yml", TIES), "out-ties", "-j", "2");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /merged 39 tensors \(ties, 4 layers\) into out-ties/);
    assert.match(r.stderr, /merging .* 39\/39 tensors/);
    assert.ok(existsSync(join(root, "out-ties", "model.safetensors")));
  });

  it("--dry-run prints the plan and writes nothing; --json is machine-readable", () => {
    const text = cli("merge", config("ties2.yml", TIES), "out-dry", "--dry-run");
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /plan: ties over 3 model\(s\), architecture llama, 4 layers, 39 tensors/);
    assert.match(text.stdout, /estimated peak tensor memory/);
    assert.match(text.stdout, /model\.layers\.3\.mlp\.down_proj\.weight/);
    const json = cli("merge", join(root, "ties2.yml"), "--dry-run", "--json");
    const d = JSON.parse(json.stdout);
    assert.equal(d.tensors.length, 39);
    assert.ok(d.bytesRead > d.bytesWritten && d.estimatedPeakBytes > 0);
    assert.equal(existsSync(join(root, "out-dry")), false);
  });

  const bad: Array<[string, string[], RegExp]> = [
    ["unknown method", ["merge_method: slrep\nmodels:\n  - model: ft1\n"], /did you mean 'slerp'/],
    [
      "unknown key",
      ["merge_method: linear\nmodels:\n  - model: ft1\n    paramters: {weight: 1}\n"],
      /models\[0\]\.paramters/,
    ],
    ["YAML syntax error", ["merge_method: linear\nmodels:\n  - model: ft1\n   - model: ft2\n"], /line \d+/],
    ["missing model", ["merge_method: linear\nmodels:\n  - model: nowhere\n    parameters: {weight: 1}\n"], /nowhere/],
    [
      "density out of range",
      ["merge_method: ties\nbase_model: base\nparameters: {density: 0, weight: 1}\nmodels:\n  - model: ft1\n"],
      /density/,
    ],
  ];
  for (const [label, [yaml], pattern] of bad) {
    it(`bad input (${label}): one line on stderr, exit 1, no output`, () => {
      const out = `out-${label.replace(/\W+/g, "-")}`;
      const r = cli("merge", config(`${out}.yml`, yaml!), out);
      assert.equal(r.code, 1);
      const lines = r.stderr.trim().split("\n");
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, /^fusionkit: error \[[A-Z_]+\]: /);
      assert.match(lines[0]!, pattern);
      assert.equal(existsSync(join(root, out)), false);
      assert.deepEqual(
        readdirSync(root).filter((f) => f.includes("fusionkit-tmp")),
        [],
      );
    });
  }

  it("refuses a non-empty output directory unless --force", () => {
    const cfg = config("lin.yml", "merge_method: linear\nmodels:\n  - model: ft1\n    parameters: {weight: 1}\n");
    assert.equal(cli("merge", cfg, "out-lin", "--no-progress").code, 0);
    const again = cli("merge", cfg, "out-lin", "--no-progress");
    assert.equal(again.code, 1);
    assert.match(again.stderr, /--force/);
    assert.equal(cli("merge", cfg, "out-lin", "--no-progress", "--force").code, 0);
  });

  it("an output path that is a file is refused, and the file is left alone", () => {
    writeFileSync(join(root, "a-file"), "keep me");
    const cfg = config("lin2.yml", "merge_method: linear\nmodels:\n  - model: ft1\n    parameters: {weight: 1}\n");
    const r = cli("merge", cfg, "a-file", "--no-progress");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /a-file: output path exists and is not a directory/);
    assert.equal(readFileSync(join(root, "a-file"), "utf8"), "keep me");
  });

  it("bad option values are rejected by the parser", () => {
    const r = cli("merge", "x.yml", "out", "--out-shard-size", "lots");
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /not a size/);
  });
});
