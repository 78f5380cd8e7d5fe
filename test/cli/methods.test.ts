import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { methodNames } from "../../src/merge/registry.js";

const MAIN = resolve(fileURLToPath(import.meta.url), "../../../src/cli/main.ts");

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ["--import", import.meta.resolve("tsx"), MAIN, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("fusionkit methods (CLI)", () => {
  it("lists every registered method", () => {
    const r = cli("methods");
    assert.equal(r.code, 0, r.stderr);
    for (const name of methodNames()) assert.match(r.stdout, new RegExp(`^${name}\\s`, "m"));
  });

  it("shows one method's parameters with defaults and ranges; --json has the spec", () => {
    const r = cli("methods", "dare_ties");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^density\s+per model\s+number\s+1\s+\(0, 1\]/m);
    assert.match(r.stdout, /random \(--random-seed\)/);
    const spec = JSON.parse(cli("methods", "dare_ties", "--json").stdout);
    assert.equal(spec.name, "dare_ties");
    assert.equal(spec.base, "required");
    assert.ok(spec.modelParameters.some((p: { name: string }) => p.name === "weight"));
  });

  it("an unknown name suggests the nearest one", () => {
    const r = cli("methods", "slerpp");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /did you mean 'slerp'/);
  });
});
