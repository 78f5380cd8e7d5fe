import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { tempDir } from "../helpers/tmp.js";

const MAIN = resolve(fileURLToPath(import.meta.url), "../../../src/cli/main.ts");
const run = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
  spawnSync(process.execPath, ["--import", import.meta.resolve("tsx"), MAIN, ...args], { encoding: "utf8", env });

describe("fusionkit train / eval / zoo", () => {
  it("trains a small MLP, then evaluates the checkpoint pair it wrote", () => {
    const dir = tempDir("cli-train");
    const out = join(dir, "mlp.safetensors");
    const t = run([
      "train",
      "--arch",
      "mlp",
      "--config",
      '{"hidden":[32]}',
      "--task",
      "coarse4",
      "--steps",
      "60",
      "--batch-size",
      "64",
      "--limit",
      "2000",
      "--lr",
      "3e-3",
      "--out",
      out,
      "--json",
      "--no-progress",
    ]);
    assert.equal(t.status, 0, t.stderr);
    const summary = JSON.parse(t.stdout);
    assert.ok(summary.val.accuracy > 0.6, `val accuracy ${summary.val.accuracy}`);
    for (const f of ["mlp.safetensors", "mlp.json", "mlp.head.safetensors", "mlp.head.json"])
      assert.ok(existsSync(join(dir, f)), f);
    const e = run(["eval", out, "--task", "coarse4", "--limit", "1000", "--json"]);
    assert.equal(e.status, 0, e.stderr);
    const m = JSON.parse(e.stdout);
    assert.equal(m.count, 1000);
    assert.ok(m.accuracy > 0.6 && m.loss > 0 && m.entropy > 0, JSON.stringify(m));
    // The 4-class head does not fit a 10-class task: one line naming the problem.
    const bad = run(["eval", out, "--task", "fmnist", "--limit", "100"]);
    assert.equal(bad.status, 1);
    assert.match(
      bad.stderr.trim(),
      /^fusionkit: error \[SHAPE_MISMATCH\]: .*4 outputs \(trained for coarse4\) but the task has 10 classes/,
    );
  });

  it("zoo build (small) then zoo show prints the accuracy matrix; a folder without pool.json is one error line", () => {
    const dir = tempDir("cli-zoo");
    const b = run(["zoo", "build", "--arch", "mlp", "--config", '{"hidden":[16]}', "--out", dir, "--no-progress"]);
    assert.equal(b.status, 0, b.stderr);
    assert.match(b.stdout, /base\+probe average [\d.]+%, fine-tuned average [\d.]+%/);
    const s = run(["zoo", "show", dir, "--markdown"]);
    assert.equal(s.status, 0, s.stderr);
    const rows = s.stdout.split("\n").filter((l) => l.startsWith("| "));
    assert.equal(rows.length, 1 + 1 + 8 + 1, s.stdout); // header, base, 8 fine-tuned, own-task summary
    assert.match(
      rows[0]!,
      /\| model \| fmnist \| rot90 \| flip \| invert \| quadrants \| coarse4 \| first5 \| last5 \| avg \|/,
    );
    const bad = run(["zoo", "show", join(dir, "heads")]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr.trim(), /^fusionkit: error \[FILE_NOT_FOUND\]: .*pool\.json/);
  });

  it("bad input: unknown task (with a suggestion), missing dataset, unknown architecture; nothing written", () => {
    const dir = tempDir("cli-bad");
    const out = join(dir, "x.safetensors");
    const cases: [string[], RegExp, NodeJS.ProcessEnv?][] = [
      [["train", "--arch", "mlp", "--task", "rot91", "--out", out], /rot90/],
      [["train", "--arch", "perceptron", "--task", "flip", "--out", out], /unknown architecture 'perceptron'/],
      [
        ["train", "--arch", "mlp", "--task", "flip", "--out", out],
        /apt-get install dataset-fashion-mnist/,
        { ...process.env, FASHION_MNIST_DIR: join(dir, "nowhere") },
      ],
    ];
    for (const [args, pattern, env] of cases) {
      const r = run([...args, "--no-progress"], env);
      assert.equal(r.status, 1, `${args.join(" ")}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, pattern);
    }
    assert.deepEqual(readdirSync(dir), []);
  });
});
