import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("../../native/build.mjs", import.meta.url));

describe("native/build.mjs (the package's install script)", () => {
  it("an addon that cannot build is reported in one line with a hint, and the install still succeeds", () => {
    const dir = mkdtempSync(join(tmpdir(), "fusionkit-native-"));
    try {
      // the script beside a dnnl-gemm addon that links a library no machine has
      mkdirSync(join(dir, "dnnl-gemm", "src"), { recursive: true });
      copyFileSync(script, join(dir, "build.mjs"));
      writeFileSync(join(dir, "dnnl-gemm", "src", "addon.c"), "int fusionkit_test_unused;\n");
      writeFileSync(
        join(dir, "dnnl-gemm", "binding.gyp"),
        JSON.stringify({
          targets: [{ target_name: "t", sources: ["src/addon.c"], libraries: ["-lfusionkit_no_such_library"] }],
        }),
      );
      const r = spawnSync(process.execPath, [join(dir, "build.mjs")], { encoding: "utf8", timeout: 120_000 });
      assert.equal(r.status, 0, r.stderr);
      const lines = r.stdout.trim().split("\n");
      assert.equal(lines.length, 1, r.stdout);
      assert.match(
        lines[0]!,
        /^fusionkit: optional oneDNN sgemm .* not built \(.+\); hint: apt-get install libdnnl-dev/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
