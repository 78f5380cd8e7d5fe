import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { FusionError } from "../../src/errors.js";
import { loadSafetensors, SafetensorsFile } from "../../src/io/safetensors-read.js";
import { encodeHeader, SafetensorsWriter, saveSafetensors } from "../../src/io/safetensors-write.js";
import { INDEX_FILE, planShards, ShardedWriter } from "../../src/io/sharded-write.js";
import { fromFloat32 } from "../../src/tensor/convert.js";
import { DTYPES, isWritableDType } from "../../src/tensor/dtype.js";
import { makeTensor, type Tensor } from "../../src/tensor/tensor.js";

const dir = mkdtempSync(join(tmpdir(), "fusionkit-st-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function sample(): Array<[string, Tensor]> {
  const values = new Float32Array([0, -0, 1.5, -2.25, 65504, 1e-8, Number.POSITIVE_INFINITY, Number.NaN]);
  const out: Array<[string, Tensor]> = [];
  for (const d of DTYPES) {
    if (!isWritableDType(d)) continue;
    const safe = d.startsWith("F") ? values : new Float32Array([0, 1, 2, 3, 4, 5, 6, 7]);
    out.push([`t.${d.toLowerCase()}`, fromFloat32(safe, d, [2, 4])]);
  }
  out.push(["f8.e4m3", makeTensor("F8_E4M3", [4], new Uint8Array([0x38, 0x7e, 0x01, 0x7f]))]);
  out.push(["scalar", fromFloat32(new Float32Array([3]), "F32", [])]);
  out.push(["empty", fromFloat32(new Float32Array(0), "BF16", [0, 5])]);
  return out;
}

describe("safetensors write + read", () => {
  it("round-trips every dtype, scalars, empty tensors and metadata bit for bit", () => {
    const path = join(dir, "all.safetensors");
    const tensors = sample();
    saveSafetensors(path, tensors, { format: "pt", note: "ünïcödé" });
    const { tensors: back, metadata } = loadSafetensors(path);
    assert.deepEqual(metadata, { format: "pt", note: "ünïcödé" });
    assert.deepEqual(
      [...back.keys()],
      tensors.map(([n]) => n),
    );
    for (const [name, t] of tensors) {
      const r = back.get(name)!;
      assert.equal(r.dtype, t.dtype, name);
      assert.deepEqual(r.shape, t.shape, name);
      assert.deepEqual(
        Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength),
        Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
        name,
      );
    }
  });

  it("writes byte-identical files across runs, data section 8-byte aligned", () => {
    const a = join(dir, "a.safetensors");
    const b = join(dir, "b.safetensors");
    saveSafetensors(a, sample(), { format: "pt" });
    saveSafetensors(b, sample(), { format: "pt" });
    const ba = readFileSync(a);
    assert.ok(ba.equals(readFileSync(b)));
    const n = Number(ba.readBigUInt64LE(0));
    assert.equal((8 + n) % 8, 0);
    assert.equal(ba[8], "{".charCodeAt(0));
  });

  it("reads lazily: one tensor's bytes at a time, into a caller's buffer", () => {
    const path = join(dir, "lazy.safetensors");
    saveSafetensors(path, [
      ["x", fromFloat32(new Float32Array([1, 2, 3]), "F32", [3])],
      ["y", fromFloat32(new Float32Array([4]), "F32", [1])],
    ]);
    const f = SafetensorsFile.open(path);
    try {
      const buf = new Uint8Array(64);
      const t = f.read("x", buf);
      assert.deepEqual([...t.data], [1, 2, 3]);
      assert.equal(t.data.buffer, buf.buffer, "no copy when the buffer is aligned");
      assert.throws(
        () => f.read("nope"),
        (e: unknown) => e instanceof FusionError && e.code === "TENSOR_NOT_FOUND" && e.tensor === "nope",
      );
      assert.throws(() => f.readBytes("x", new Uint8Array(4)), FusionError);
    } finally {
      f.close();
    }
  });

  it("streams tensors in any order and renames only when all have arrived", () => {
    const path = join(dir, "stream.safetensors");
    const specs = [
      { name: "a", dtype: "F32" as const, shape: [2] },
      { name: "b", dtype: "BF16" as const, shape: [3] },
    ];
    const w = SafetensorsWriter.create(path, specs);
    w.write("b", new Uint16Array([1, 2, 3]));
    assert.equal(existsSync(path), false, "nothing at the final path before finish()");
    assert.throws(
      () => w.write("b", new Uint16Array([1, 2, 3])),
      (e: unknown) => e instanceof FusionError && e.code === "DUPLICATE_TENSOR",
    );
    assert.throws(
      () => w.write("a", new Float32Array(3)),
      (e: unknown) => e instanceof FusionError && e.code === "SHAPE_MISMATCH",
    );
    w.write("a", new Float32Array([5, 6]));
    w.finish();
    const { tensors } = loadSafetensors(path);
    assert.deepEqual([...tensors.get("a")!.data], [5, 6]);
    assert.deepEqual([...tensors.get("b")!.data], [1, 2, 3]);
  });

  it("a writer missing tensors fails at finish() and leaves no file behind", () => {
    const sub = mkdtempSync(join(dir, "missing-"));
    const w = SafetensorsWriter.create(join(sub, "m.safetensors"), [{ name: "a", dtype: "F32", shape: [1] }]);
    assert.throws(
      () => w.finish(),
      (e: unknown) => e instanceof FusionError && e.code === "TENSOR_NOT_FOUND" && e.tensor === "a",
    );
    assert.deepEqual(readdirSync(sub), []);
    const w2 = SafetensorsWriter.create(join(sub, "n.safetensors"), [{ name: "a", dtype: "F32", shape: [1] }]);
    w2.abort();
    assert.deepEqual(readdirSync(sub), []);
  });

  it("refuses duplicate names, the reserved name and non-string metadata", () => {
    const spec = { name: "a", dtype: "F32" as const, shape: [1] };
    assert.throws(
      () => encodeHeader([spec, spec], undefined, "f"),
      (e: unknown) => e instanceof FusionError && e.code === "DUPLICATE_TENSOR",
    );
    assert.throws(() => encodeHeader([{ ...spec, name: "__metadata__" }], undefined, "f"), FusionError);
    assert.throws(() => encodeHeader([spec], { a: 1 as unknown as string }, "f"), FusionError);
  });
});

describe("sharded checkpoints", () => {
  it("plans shards by a byte budget, a tensor larger than the budget alone", () => {
    const specs = [
      { name: "a", dtype: "F32" as const, shape: [10] },
      { name: "b", dtype: "F32" as const, shape: [10] },
      { name: "big", dtype: "F32" as const, shape: [100] },
      { name: "c", dtype: "F32" as const, shape: [5] },
    ];
    const plan = planShards(specs, 80);
    assert.deepEqual(
      plan.shards.map((s) => [s.file, s.specs.map((x) => x.name)]),
      [
        ["model-00001-of-00003.safetensors", ["a", "b"]],
        ["model-00002-of-00003.safetensors", ["big"]],
        ["model-00003-of-00003.safetensors", ["c"]],
      ],
    );
    assert.equal(plan.totalSize, 500);
    assert.equal(planShards(specs, 1e9).shards[0]!.file, "model.safetensors");
  });

  it("writes shards plus a Hugging Face index (sorted weight_map, total_size), data page-aligned", () => {
    const out = mkdtempSync(join(dir, "sharded-"));
    const tensors = sample().filter(([, t]) => t.data.byteLength > 0);
    const w = ShardedWriter.create(
      out,
      tensors.map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape })),
      { maxShardBytes: 64 },
    );
    for (const [name, t] of [...tensors].reverse()) w.write(name, t.data);
    const files = w.finish();
    assert.ok(files.length > 2);
    assert.equal(files.at(-1), INDEX_FILE);
    const index = JSON.parse(readFileSync(join(out, INDEX_FILE), "utf8"));
    assert.equal(
      index.metadata.total_size,
      tensors.reduce((s, [, t]) => s + t.data.byteLength, 0),
    );
    assert.deepEqual(Object.keys(index.weight_map), Object.keys(index.weight_map).sort());
    for (const [name, t] of tensors) {
      // each shard's data section starts on a page (4 KiB), its header padded with spaces
      const bytes = readFileSync(join(out, index.weight_map[name]));
      const n = Number(bytes.readBigUInt64LE(0));
      assert.equal((8 + n) % 4096, 0, `${index.weight_map[name]}: data at ${8 + n}`);
      assert.equal(bytes[8 + n - 1], 0x20);
      const f = SafetensorsFile.open(join(out, index.weight_map[name]));
      try {
        assert.deepEqual(f.metadata, { format: "pt" });
        assert.ok(
          Buffer.from(f.readBytes(name)).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
        );
      } finally {
        f.close();
      }
    }
    assert.deepEqual(
      readdirSync(out).filter((f) => f.includes("fusionkit-tmp")),
      [],
    );
  });

  it("background writebacks between writes change no byte, and settle before finish", async () => {
    const out = mkdtempSync(join(dir, "writeback-"));
    const tensors = sample().filter(([, t]) => t.data.byteLength > 0);
    const w = ShardedWriter.create(
      out,
      tensors.map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape })),
      { maxShardBytes: 64 },
    );
    for (const [name, t] of tensors) {
      w.write(name, t.data);
      w.writeback(); // a second call while one runs is a no-op
    }
    await w.settle();
    w.writeback();
    await w.settle();
    w.finish();
    const index = JSON.parse(readFileSync(join(out, INDEX_FILE), "utf8"));
    for (const [name, t] of tensors) {
      const f = SafetensorsFile.open(join(out, index.weight_map[name]));
      try {
        assert.ok(
          Buffer.from(f.readBytes(name)).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
        );
      } finally {
        f.close();
      }
    }
  });

  it("an aborted sharded write leaves the directory empty", () => {
    const out = mkdtempSync(join(dir, "abort-"));
    const w = ShardedWriter.create(
      out,
      [
        { name: "a", dtype: "F32", shape: [4] },
        { name: "b", dtype: "F32", shape: [4] },
      ],
      { maxShardBytes: 16 },
    );
    w.write("a", new Float32Array(4));
    assert.throws(() => w.finish(), FusionError);
    assert.deepEqual(readdirSync(out), []);
  });
});
