import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { it } from "node:test";
import { fileURLToPath } from "node:url";

const MAIN = resolve(fileURLToPath(import.meta.url), "../../../src/cli/main.ts");

it("fusionkit doctor reports Node, the merge kernels and the nn backend actually selected", () => {
  const r = spawnSync(process.execPath, ["--import", import.meta.resolve("tsx"), MAIN, "doctor", "--json"], {
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.node, process.version);
  assert.ok(["fusionkit", "wasm", "cpu"].includes(report.nn.backend));
  assert.match(report.mergeKernels, /^WebAssembly SIMD; TIES \/ DARE over bf16: /);
  if (process.env.FUSIONKIT_BACKEND) assert.equal(report.nn.backend, process.env.FUSIONKIT_BACKEND);
});
