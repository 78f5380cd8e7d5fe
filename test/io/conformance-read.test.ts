import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SafetensorsFile } from "../../src/io/safetensors-read.js";
import { toFloat32 } from "../../src/tensor/convert.js";
import { type ConformanceCase, casePath, loadManifest } from "../helpers/conformance.js";

// The conformance files were written by an independent (Python) safetensors writer: reading them checks our
// reader against another implementation. The manifest describes every tensor's shape, and some values.
const manifest = loadManifest();

function checkCase(c: ConformanceCase): void {
  const f = SafetensorsFile.open(casePath(c));
  try {
    assert.deepEqual(new Set(f.names()), new Set(Object.keys(c.tensors)), "tensor names");
    assert.equal(f.metadata?.case, c.name, "__metadata__.case");
    assert.equal(f.metadata?.method, c.method, "__metadata__.method");
    for (const [name, shape] of Object.entries(c.tensors)) {
      const t = f.read(name);
      assert.equal(t.dtype, "F32", name);
      assert.deepEqual(t.shape, shape, name);
      const v = toFloat32(t);
      if (name.startsWith("aux.mask_"))
        assert.ok(
          v.every((x) => x === 0 || x === 1),
          `${name} is a 0/1 mask`,
        );
      if (name.startsWith("input.")) assert.ok(v.every(Number.isFinite), `${name} is finite`);
      if (name === "expected") {
        if (c.expected_has_nonfinite !== undefined) {
          assert.equal(!v.every(Number.isFinite), c.expected_has_nonfinite, "expected_has_nonfinite");
        }
        const maxAbs = c.float64_rerun_deviation?.max_abs_expected;
        if (typeof maxAbs === "number") {
          let m = 0;
          for (const x of v) if (Number.isFinite(x)) m = Math.max(m, Math.abs(x));
          assert.equal(m, Math.fround(maxAbs), "max |expected|");
        }
      }
    }
  } finally {
    f.close();
  }
}

describe("reads the shared conformance files (written by Python's safetensors)", () => {
  it("the manifest lists cases", () => {
    assert.equal(manifest.format, "mergekit-conformance-v1");
    assert.ok(manifest.cases.length > 0 && manifest.error_cases.length > 0);
  });
  for (const c of [...manifest.cases, ...manifest.error_cases]) it(c.name, () => checkCase(c));
});
