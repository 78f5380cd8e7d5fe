import assert from "node:assert/strict";
import {
  cpSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { basename, join } from "node:path";
import { before, describe, it } from "node:test";
import { FusionError } from "../../src/errors.js";
import { ModelDir, openStateDict } from "../../src/io/model-dir.js";
import { loadSafetensors } from "../../src/io/safetensors-read.js";
import { saveSafetensors, type TensorSpec, tensorBytes } from "../../src/io/safetensors-write.js";
import { INDEX_FILE, ShardedWriter, SINGLE_FILE } from "../../src/io/sharded-write.js";
import { llamaConfig, TINY_LLAMA, writeSyntheticLlama } from "../../src/synth/llama.js";
import { allocStorage, storageBytes } from "../../src/tensor/dtype.js";
import { fillNormal, hashSeed } from "../../src/tensor/random.js";
import { makeTensor, numel } from "../../src/tensor/tensor.js";
import { openFdCount, snapshotTree, tempDir } from "../helpers/tmp.js";

const SHAPE = { ...TINY_LLAMA, numLayers: 2 };
const BASE_SEED = 7;
/** Small enough that the tiny model spans several shards. */
const SHARD_BYTES = 150_000;

/** The values writeSyntheticLlama stores for `spec` (F32), recomputed from its documented recipe. */
function expectedValues(spec: TensorSpec): Float32Array {
  const values = new Float32Array(numel(spec.shape));
  const isNorm = spec.shape.length === 1;
  fillNormal(values, hashSeed(BASE_SEED, spec.name), isNorm ? 0.1 : 0.02);
  if (isNorm) for (let i = 0; i < values.length; i++) values[i] = values[i]! + 1;
  return values;
}

function bytesOf(a: { buffer: ArrayBufferLike; byteOffset: number; byteLength: number }): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Run `fn`, which must throw a FusionError with `code`; checks where it points and that nothing leaked. */
function refuses(
  fn: () => unknown,
  code: string,
  where: { file?: string; tensor?: string; key?: string; message?: RegExp } = {},
): FusionError {
  const fds = openFdCount();
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof FusionError, `expected a FusionError [${code}], got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (where.file !== undefined) {
    assert.equal(caught.file, where.file, caught.message);
    assert.ok(caught.message.includes(where.file), `message does not name ${where.file}: ${caught.message}`);
  }
  if (where.tensor !== undefined) {
    assert.equal(caught.tensor, where.tensor, caught.message);
    assert.ok(caught.message.includes(`'${where.tensor}'`), `message does not name the tensor: ${caught.message}`);
  }
  if (where.key !== undefined) assert.equal(caught.key, where.key, caught.message);
  if (where.message !== undefined) assert.match(caught.message, where.message);
  assert.equal(openFdCount(), fds, "a file descriptor leaked on the error path");
  return caught;
}

/** Open, read every tensor and the config, close: what a consumer does. */
function openAndReadAll(dir: string): void {
  const m = ModelDir.open(dir);
  try {
    for (const name of m.stateDict.names()) m.stateDict.read(name);
    m.config();
  } finally {
    m.close();
  }
}

describe("ModelDir: reading model directories", () => {
  const root = tempDir("modeldir");
  const singleDir = join(root, "single");
  const shardedDir = join(root, "sharded");
  let specs: TensorSpec[] = [];
  let shardedFiles: string[] = [];

  before(() => {
    specs = writeSyntheticLlama(singleDir, { shape: SHAPE, dtype: "F32", baseSeed: BASE_SEED }).specs;
    shardedFiles = writeSyntheticLlama(shardedDir, {
      shape: SHAPE,
      dtype: "F32",
      baseSeed: BASE_SEED,
      maxShardBytes: SHARD_BYTES,
    }).files;
  });

  it("opens a single-file directory: names in storage order, info, values, config", () => {
    const before = snapshotTree(singleDir);
    const m = ModelDir.open(singleDir);
    try {
      assert.equal(m.indexFile, undefined);
      assert.equal(m.indexTotalSize, undefined);
      assert.equal(m.shards.length, 1);
      assert.equal(m.shards[0]!.file, SINGLE_FILE);
      assert.equal(m.shards[0]!.tensors, specs.length);
      assert.equal(m.shards[0]!.bytes, statSync(join(singleDir, SINGLE_FILE)).size);
      assert.deepEqual(
        m.stateDict.names(),
        specs.map((s) => s.name),
      );
      let cursor = 0;
      for (const spec of specs) {
        assert.ok(m.stateDict.has(spec.name));
        const info = m.stateDict.info(spec.name);
        assert.equal(info.dtype, "F32");
        assert.deepEqual(info.shape, spec.shape);
        assert.equal(info.file, join(singleDir, SINGLE_FILE));
        assert.equal(info.begin, cursor, `${spec.name} offset`);
        assert.equal(info.end - info.begin, tensorBytes(spec));
        cursor = info.end;
        const t = m.stateDict.read(spec.name);
        assert.equal(t.dtype, "F32");
        assert.deepEqual(t.shape, spec.shape);
        assert.ok(bytesOf(t.data).equals(bytesOf(expectedValues(spec))), `${spec.name} values`);
        assert.ok(bytesOf(m.stateDict.readBytes(spec.name)).equals(bytesOf(t.data)));
      }
      assert.deepEqual(m.config(), llamaConfig(SHAPE, "F32"));
      refuses(() => m.stateDict.info("no.such.weight"), "TENSOR_NOT_FOUND", { tensor: "no.such.weight" });
      assert.equal(m.stateDict.has("no.such.weight"), false);
    } finally {
      m.close();
    }
    assert.deepEqual(snapshotTree(singleDir), before, "opening and reading modified the directory");
  });

  it("opens a sharded directory: shards, index, storage order, identical values", () => {
    const shardFiles = shardedFiles.filter((f) => f.endsWith(".safetensors"));
    assert.ok(shardFiles.length >= 3, `expected several shards, got ${shardedFiles.join(", ")}`);
    assert.ok(shardedFiles.includes(INDEX_FILE));
    const index = JSON.parse(readFileSync(join(shardedDir, INDEX_FILE), "utf8")) as {
      metadata: { total_size: number };
      weight_map: Record<string, string>;
    };
    const before = snapshotTree(shardedDir);
    const m = ModelDir.open(shardedDir);
    const single = ModelDir.open(singleDir);
    try {
      assert.equal(m.indexFile, join(shardedDir, INDEX_FILE));
      const total = specs.reduce((s, x) => s + tensorBytes(x), 0);
      assert.equal(m.indexTotalSize, total);
      assert.equal(index.metadata.total_size, total);
      assert.deepEqual(
        m.shards.map((s) => s.file),
        [...shardFiles].sort(),
      );
      for (const s of m.shards) {
        assert.equal(s.bytes, statSync(join(shardedDir, s.file)).size, s.file);
        assert.equal(s.tensors, Object.values(index.weight_map).filter((f) => f === s.file).length, s.file);
        assert.deepEqual(s.metadata, { format: "pt" });
      }
      assert.equal(
        m.shards.reduce((s, x) => s + x.tensors, 0),
        specs.length,
      );
      // Storage order: shard by shard, by offset within a shard; the writer fills shards in spec order.
      assert.deepEqual(
        m.stateDict.names(),
        specs.map((s) => s.name),
      );
      for (const spec of specs) {
        const info = m.stateDict.info(spec.name);
        assert.equal(basename(info.file), index.weight_map[spec.name], spec.name);
        assert.deepEqual(info.shape, spec.shape);
        const t = m.stateDict.read(spec.name);
        assert.ok(bytesOf(t.data).equals(bytesOf(single.stateDict.read(spec.name).data)), spec.name);
        assert.ok(bytesOf(t.data).equals(bytesOf(expectedValues(spec))), spec.name);
      }
      assert.deepEqual(m.config(), llamaConfig(SHAPE, "F32"));
    } finally {
      m.close();
      single.close();
    }
    assert.deepEqual(snapshotTree(shardedDir), before, "opening and reading modified the directory");
  });

  it("reads exactly what ShardedWriter wrote, every dtype, scalars and empty tensors included", () => {
    const dir = join(root, "writer");
    mkdirSync(dir);
    const specsW: TensorSpec[] = [
      { name: "a.f32", dtype: "F32", shape: [8, 4] },
      { name: "b.i64", dtype: "I64", shape: [5] },
      { name: "c.bf16", dtype: "BF16", shape: [3, 7] },
      { name: "d.scalar", dtype: "F16", shape: [] },
      { name: "e.empty", dtype: "F32", shape: [0, 16] },
      { name: "f.u8", dtype: "U8", shape: [40] },
      { name: "g.bool", dtype: "BOOL", shape: [3] },
      { name: "h.i8", dtype: "I8", shape: [2, 2] },
    ];
    const data = new Map<string, Buffer>();
    const w = ShardedWriter.create(dir, specsW, { maxShardBytes: 64 });
    // Written in reverse: the writer places each tensor at its planned offset whatever the order.
    for (const s of [...specsW].reverse()) {
      const storage = allocStorage(s.dtype, numel(s.shape));
      const bytes = storageBytes(storage);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + s.name.length * 7) & 0xff;
      data.set(s.name, Buffer.from(bytes));
      w.write(s.name, storage);
    }
    const files = w.finish();
    assert.ok(files.length > 3 && files.at(-1) === INDEX_FILE, files.join(", "));
    const before = snapshotTree(dir);
    const m = ModelDir.open(dir);
    try {
      assert.equal(m.shards.length, files.length - 1);
      assert.deepEqual(
        m.stateDict.names(),
        specsW.map((s) => s.name),
      );
      for (const s of specsW) {
        const t = m.stateDict.read(s.name);
        assert.equal(t.dtype, s.dtype);
        assert.deepEqual(t.shape, s.shape);
        assert.equal(t.data.length, numel(s.shape));
        assert.ok(bytesOf(t.data).equals(data.get(s.name)!), s.name);
        // into a caller's buffer, at an odd offset
        const buf = new Uint8Array(tensorBytes(s) + 3);
        const got = m.stateDict.readBytes(s.name, buf.subarray(1));
        assert.ok(Buffer.from(got).equals(data.get(s.name)!), `${s.name} readBytes(into)`);
      }
    } finally {
      m.close();
    }
    assert.deepEqual(snapshotTree(dir), before);
  });

  it("openStateDict opens a directory or a single file alike", () => {
    for (const path of [singleDir, shardedDir, join(singleDir, SINGLE_FILE)]) {
      const sd = openStateDict(path);
      try {
        assert.deepEqual(
          sd.names(),
          specs.map((s) => s.name),
        );
        const name = specs[1]!.name;
        assert.ok(bytesOf(sd.read(name).data).equals(bytesOf(expectedValues(specs[1]!))), path);
      } finally {
        sd.close();
      }
    }
  });

  it("follows a symlinked shard that stays inside the directory", () => {
    const dir = join(root, "inner-link");
    cpSync(shardedDir, dir, { recursive: true });
    const index = JSON.parse(readFileSync(join(dir, INDEX_FILE), "utf8")) as { weight_map: Record<string, string> };
    mkdirSync(join(dir, "store"));
    const first = index.weight_map[specs[0]!.name]!;
    cpSync(join(dir, first), join(dir, "store", first));
    rmSync(join(dir, first));
    symlinkSync(join("store", first), join(dir, first));
    const m = ModelDir.open(dir);
    try {
      assert.ok(bytesOf(m.stateDict.read(specs[0]!.name).data).equals(bytesOf(expectedValues(specs[0]!))));
    } finally {
      m.close();
    }
  });
});

describe("ModelDir: typed errors", () => {
  const root = tempDir("modeldir-err");
  const template = join(root, "template");
  const outsideFile = join(root, "x.safetensors");
  let specs: TensorSpec[] = [];
  let counter = 0;

  before(() => {
    specs = writeSyntheticLlama(template, {
      shape: SHAPE,
      dtype: "F32",
      baseSeed: BASE_SEED,
      maxShardBytes: SHARD_BYTES,
    }).specs;
    saveSafetensors(outsideFile, [["model.norm.weight", makeTensor("F32", [SHAPE.hiddenSize], new Float32Array(64))]]);
  });

  /** A fresh copy of the sharded template, and its index as an editable object. */
  function copy(): {
    dir: string;
    indexPath: string;
    index: { metadata: unknown; weight_map: Record<string, unknown> };
  } {
    const dir = join(root, `case-${counter++}`);
    cpSync(template, dir, { recursive: true });
    const indexPath = join(dir, INDEX_FILE);
    return { dir, indexPath, index: JSON.parse(readFileSync(indexPath, "utf8")) };
  }

  /** Expect ModelDir.open(dir) to refuse, and to leave every file in `dir` (and `root`) untouched. */
  function openRefuses(dir: string, code: string, where: Parameters<typeof refuses>[2] = {}): FusionError {
    const before = snapshotTree(root);
    const e = refuses(() => openAndReadAll(dir), code, where);
    assert.deepEqual(snapshotTree(root), before, "a failed open modified files");
    return e;
  }

  it("weight_map pointing outside the directory → PATH_OUTSIDE_DIR naming the index and the tensor", () => {
    for (const target of ["../x.safetensors", "sub/../../x.safetensors", outsideFile, "..", "."]) {
      const { dir, indexPath, index } = copy();
      const tensor = "model.norm.weight";
      index.weight_map[tensor] = target;
      writeFileSync(indexPath, JSON.stringify(index));
      openRefuses(dir, "PATH_OUTSIDE_DIR", { file: indexPath, tensor, message: /outside the model directory/ });
    }
  });

  it("a symlinked shard, or a symlinked folder, leading outside → PATH_OUTSIDE_DIR", () => {
    {
      const { dir, indexPath, index } = copy();
      symlinkSync(outsideFile, join(dir, "link.safetensors"));
      index.weight_map["model.norm.weight"] = "link.safetensors";
      writeFileSync(indexPath, JSON.stringify(index));
      openRefuses(dir, "PATH_OUTSIDE_DIR", { file: indexPath, tensor: "model.norm.weight" });
    }
    {
      const { dir, indexPath, index } = copy();
      symlinkSync(root, join(dir, "up"));
      index.weight_map["model.norm.weight"] = "up/x.safetensors";
      writeFileSync(indexPath, JSON.stringify(index));
      openRefuses(dir, "PATH_OUTSIDE_DIR", { file: indexPath, tensor: "model.norm.weight" });
    }
    {
      // every shard replaced by a link to a copy outside
      const { dir, index } = copy();
      const shard = index.weight_map[specs[0]!.name] as string;
      cpSync(join(dir, shard), join(root, `outside-${shard}`));
      rmSync(join(dir, shard));
      symlinkSync(join(root, `outside-${shard}`), join(dir, shard));
      openRefuses(dir, "PATH_OUTSIDE_DIR", { file: join(dir, INDEX_FILE) });
    }
  });

  it("missing shard file → FILE_NOT_FOUND naming the shard and a tensor", () => {
    const { dir, index } = copy();
    const shard = index.weight_map[specs[0]!.name] as string;
    rmSync(join(dir, shard));
    const e = openRefuses(dir, "FILE_NOT_FOUND", { file: join(dir, shard), tensor: specs[0]!.name });
    assert.match(e.message, new RegExp(INDEX_FILE.replaceAll(".", "\\.")));
    // a dangling symlink is a missing file too
    symlinkSync(join(root, "nowhere.safetensors"), join(dir, shard));
    openRefuses(dir, "FILE_NOT_FOUND", { file: join(dir, shard) });
  });

  it("the same tensor stored in two shards → DUPLICATE_TENSOR", () => {
    const { dir, indexPath, index } = copy();
    const shards = [...new Set(Object.values(index.weight_map) as string[])].sort();
    const stolen = Object.keys(index.weight_map).find((k) => index.weight_map[k] === shards[0])!;
    const victim = join(dir, shards[1]!);
    const { tensors, metadata } = loadSafetensors(victim);
    const extra = loadSafetensors(join(dir, shards[0]!)).tensors.get(stolen)!;
    saveSafetensors(victim, [...tensors, [stolen, extra]], metadata);
    const e = openRefuses(dir, "DUPLICATE_TENSOR", { file: indexPath, tensor: stolen });
    assert.ok(e.message.includes(shards[0]!) && e.message.includes(shards[1]!), e.message);
  });

  it("a tensor listed in the index but absent from its shard → TENSOR_NOT_FOUND", () => {
    {
      const { dir, indexPath, index } = copy();
      const shard = index.weight_map[specs[0]!.name] as string;
      index.weight_map["ghost.weight"] = shard;
      writeFileSync(indexPath, JSON.stringify(index));
      openRefuses(dir, "TENSOR_NOT_FOUND", { file: join(dir, shard), tensor: "ghost.weight", message: /absent/ });
    }
    {
      // an existing tensor attributed to the wrong shard
      const { dir, indexPath, index } = copy();
      const shards = [...new Set(Object.values(index.weight_map) as string[])].sort();
      const name = Object.keys(index.weight_map).find((k) => index.weight_map[k] === shards[0])!;
      index.weight_map[name] = shards[1];
      writeFileSync(indexPath, JSON.stringify(index));
      openRefuses(dir, "TENSOR_NOT_FOUND", { file: join(dir, shards[1]!), tensor: name });
    }
  });

  it("invalid index JSON, repeated keys, wrong types → INDEX_INVALID naming the index", () => {
    const cases: Array<[string, string | undefined, RegExp]> = [
      ["{not json", undefined, /invalid JSON/],
      ["", undefined, /invalid JSON/],
      ["[]", undefined, /not a JSON object/],
      ['{"weight_map": []}', "weight_map", /weight_map/],
      ['{"weight_map": "model.safetensors"}', "weight_map", /weight_map/],
      ['{"weight_map": null}', "weight_map", /weight_map/],
      ['{"metadata": {}}', "weight_map", /weight_map/],
      ['{"metadata": {"total_size": -1}, "weight_map": {}}', "metadata.total_size", /total_size/],
      ['{"metadata": {"total_size": "12"}, "weight_map": {}}', "metadata.total_size", /total_size/],
      ['{"metadata": {"total_size": 1.5}, "weight_map": {}}', "metadata.total_size", /total_size/],
      ['{"weight_map": {}, "weight_map": {}}', undefined, /'weight_map' appears twice/],
    ];
    for (const [text, key, message] of cases) {
      const { dir, indexPath } = copy();
      writeFileSync(indexPath, text);
      openRefuses(dir, "INDEX_INVALID", { file: indexPath, key, message });
    }
  });

  it("a tensor repeated in the weight_map JSON text → INDEX_INVALID naming the key", () => {
    const { dir, indexPath } = copy();
    const text = readFileSync(indexPath, "utf8");
    const name = specs[3]!.name;
    const line = text.split("\n").find((l) => l.includes(`"${name}"`))!;
    // The same entry twice: JSON.parse alone would silently keep one.
    writeFileSync(indexPath, text.replace(line, `${line}\n${line}`));
    openRefuses(dir, "INDEX_INVALID", { file: indexPath, message: new RegExp(`'weight_map\\.${name}' appears twice`) });
  });

  it("weight_map values that are not file names → INDEX_INVALID naming the tensor", () => {
    for (const v of [1, "", null, ["model.safetensors"]]) {
      const { dir, indexPath, index } = copy();
      index.weight_map["model.norm.weight"] = v;
      writeFileSync(indexPath, JSON.stringify(index));
      openRefuses(dir, "INDEX_INVALID", { file: indexPath, tensor: "model.norm.weight" });
    }
  });

  it("a corrupt shard → the reader's error naming the shard", () => {
    const { dir, index } = copy();
    const shard = join(dir, index.weight_map[specs.at(-1)!.name] as string);
    truncateSync(shard, statSync(shard).size - 1);
    openRefuses(dir, "SAFETENSORS_TRUNCATED", { file: shard });
    writeFileSync(shard, "garbage!");
    openRefuses(dir, "SAFETENSORS_HEADER", { file: shard });
  });

  it("no model files, a missing path, a file path → FILE_NOT_FOUND / INVALID_ARGUMENT naming the path", () => {
    const empty = join(root, `empty-${counter++}`);
    mkdirSync(empty);
    openRefuses(empty, "FILE_NOT_FOUND", { file: empty, message: /no model\.safetensors/ });
    writeFileSync(join(empty, "config.json"), "{}");
    openRefuses(empty, "FILE_NOT_FOUND", { file: empty });
    writeFileSync(join(empty, "pytorch_model.bin"), "PK");
    openRefuses(empty, "FILE_NOT_FOUND", { file: empty, message: /pytorch_model\.bin/ });
    const missing = join(root, "does", "not", "exist");
    openRefuses(missing, "FILE_NOT_FOUND", { file: missing });
    const file = join(template, "config.json");
    openRefuses(file, "INVALID_ARGUMENT", { file });
    refuses(() => openStateDict(missing), "FILE_NOT_FOUND", { file: missing });
  });

  it("invalid config.json → CONFIG_INVALID naming the file; no config.json → undefined", () => {
    for (const [text, message] of [
      ["{bad", /invalid JSON/],
      ["[1, 2]", /not a JSON object/],
      ["null", /not a JSON object/],
      ['{"a": 1, "a": 2}', /'a' appears twice/],
    ] as const) {
      const { dir } = copy();
      const path = join(dir, "config.json");
      writeFileSync(path, text);
      const m = ModelDir.open(dir);
      try {
        refuses(() => m.config(), "CONFIG_INVALID", { file: path, message });
      } finally {
        m.close();
      }
    }
    const { dir } = copy();
    rmSync(join(dir, "config.json"));
    const m = ModelDir.open(dir);
    try {
      assert.equal(m.config(), undefined);
    } finally {
      m.close();
    }
  });

  it("opening a valid directory leaves every byte and mtime as it was", () => {
    const { dir } = copy();
    symlinkSync(join(dir, "config.json"), join(dir, "config-link.json"));
    const before = snapshotTree(dir);
    for (let i = 0; i < 3; i++) openAndReadAll(dir);
    const sd = openStateDict(dir);
    sd.close();
    assert.deepEqual(snapshotTree(dir), before);
    assert.deepEqual(readdirSync(dir).sort(), [...before.keys()].filter((k) => !k.includes("/")).sort());
  });

  // Regression tests for bugs the first version of the reader and CLI had.

  /** Any FusionError that names `file` will do: the fix may pick the code. */
  function typed(fn: () => unknown, file: string): void {
    try {
      fn();
    } catch (e) {
      assert.ok(e instanceof FusionError, `expected a FusionError naming ${file}, got ${String(e)}`);
      assert.ok(e.message.includes(file), e.message);
      return;
    }
    assert.fail("no error");
  }

  it("model.safetensors that is a directory → typed error", () => {
    const dir = join(root, `dir-as-file-${counter++}`);
    mkdirSync(join(dir, SINGLE_FILE), { recursive: true });
    typed(() => ModelDir.open(dir), join(dir, SINGLE_FILE));
  });

  it("an index that is a directory → typed error", () => {
    const dir = join(root, `dir-as-index-${counter++}`);
    mkdirSync(join(dir, INDEX_FILE), { recursive: true });
    typed(() => ModelDir.open(dir), join(dir, INDEX_FILE));
  });

  it("a config.json that is a directory → typed error", () => {
    const { dir } = copy();
    rmSync(join(dir, "config.json"));
    mkdirSync(join(dir, "config.json"));
    const m = ModelDir.open(dir);
    try {
      typed(() => m.config(), join(dir, "config.json"));
    } finally {
      m.close();
    }
  });
});
