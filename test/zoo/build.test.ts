import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { FusionError } from "../../src/errors.js";
import { buildZoo } from "../../src/zoo/build.js";
import { tempDir } from "../helpers/tmp.js";

const TASKS = ["fmnist", "rot90", "flip", "invert", "quadrants", "coarse4", "first5", "last5"];

describe("zoo build (small profile)", () => {
  const config = { hidden: [32] };

  it("writes base, heads, fine-tuned models and pool.json; a rebuild comes from the cache; another folder gets the same bytes", async () => {
    const out = tempDir("zoo");
    const r = await buildZoo({ arch: "mlp", profile: "small", out, config });
    assert.ok(existsSync(join(out, "base.safetensors")) && existsSync(join(out, "base.json")));
    for (const t of TASKS) {
      assert.ok(existsSync(join(out, "heads", `${t}.safetensors`)), `head ${t}`);
      assert.ok(existsSync(join(out, "finetuned", `${t}.safetensors`)), `finetuned ${t}`);
    }
    const pool = JSON.parse(readFileSync(join(out, "pool.json"), "utf8"));
    assert.equal(pool.format, "fusionkit-pool/1");
    assert.deepEqual(
      pool.tasks.map((t: { name: string }) => t.name),
      TASKS,
    );
    assert.deepEqual(Object.keys(pool.accuracy), ["base", ...TASKS.map((t) => `finetuned/${t}`)]);
    for (const row of Object.values(pool.accuracy) as Record<string, number>[])
      for (const t of TASKS) assert.ok(row[t]! >= 0 && row[t]! <= 1);
    // Each fine-tuned model beats the base on its own task (20 steps of training on it).
    const wins = TASKS.filter((t) => pool.accuracy[`finetuned/${t}`][t] > pool.accuracy.base[t]).length;
    assert.ok(wins >= 6, `fine-tuned beat the base on only ${wins} of 8 tasks`);
    assert.equal(r.base.cached, false);

    const base = readFileSync(join(out, "base.safetensors"));
    const again = await buildZoo({ arch: "mlp", profile: "small", out, config });
    assert.equal(again.base.cached, true);
    assert.ok(
      Object.values(again.heads).every((a) => a.cached) && Object.values(again.finetuned).every((a) => a.cached),
    );
    assert.deepEqual(again.accuracy, r.accuracy);

    const other = tempDir("zoo2");
    await buildZoo({ arch: "mlp", profile: "small", out: other, config });
    assert.ok(readFileSync(join(other, "base.safetensors")).equals(base), "rebuild is not byte-identical");
    assert.ok(
      readFileSync(join(other, "finetuned", "invert.safetensors")).equals(
        readFileSync(join(out, "finetuned", "invert.safetensors")),
      ),
    );
  });

  it("rejects unknown profiles, suites and architectures with typed errors", async () => {
    const out = tempDir("zoo-bad");
    for (const o of [{ arch: "mlp", profile: "huge" }, { arch: "mlp", suite: "cifar" }, { arch: "transformerxl" }]) {
      await assert.rejects(buildZoo({ ...o, out }), (e: unknown) => e instanceof FusionError);
    }
  });
});
