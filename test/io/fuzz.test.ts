/**
 * Fuzzing the safetensors reader: valid files are mutated (length prefix, header bytes, structured JSON edits,
 * truncation, trailing bytes, data bytes) and every case must end in a typed FusionError that names the file, or in
 * a correct read: every tensor inside the file, its bytes exactly the file's bytes at its offsets, its element count
 * the product of its shape. Every positional read the reader issues is checked against the file size, and every
 * descriptor it opens must be closed again.
 *
 * Deterministic: FUSIONKIT_FUZZ_SEED (decimal or 0x-hex) picks the stream, else a fixed default; FUSIONKIT_FUZZ_CASES
 * raises the case count (never below the 2,000 the acceptance criterion asks for). A failing case reports its seed,
 * index and mutation and keeps its bytes in the OS temp dir.
 */
import assert from "node:assert/strict";
import fs, { copyFileSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FusionError } from "../../src/errors.js";
import { SafetensorsFile } from "../../src/io/safetensors-read.js";
import { saveSafetensors } from "../../src/io/safetensors-write.js";
import { allocStorage, type DType, storageBytes } from "../../src/tensor/dtype.js";
import { makeTensor, type Tensor } from "../../src/tensor/tensor.js";
import { openFdCount, tempDir } from "../helpers/tmp.js";

const DEFAULT_SEED = 0x5afe7e50;
const MIN_CASES = 2000;

function parseSeed(raw: string | undefined): number {
  if (raw === undefined || raw.trim() === "") return DEFAULT_SEED;
  const n = Number(raw.trim());
  if (!Number.isFinite(n)) throw new Error(`FUSIONKIT_FUZZ_SEED=${raw} is not a number`);
  return Math.trunc(n) >>> 0;
}

const SEED = parseSeed(process.env.FUSIONKIT_FUZZ_SEED);
const CASES = Math.max(MIN_CASES, Number(process.env.FUSIONKIT_FUZZ_CASES ?? 0) || 5000);
const SEED_HEX = `0x${SEED.toString(16).padStart(8, "0")}`;

// ---------------------------------------------------------------------------------------------------------------
// Deterministic randomness

class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** mulberry32: uniform in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bool(p = 0.5): boolean {
    return this.next() < p;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// A JSON model that can express what JSON.parse would hide: repeated keys and literal number spellings

/** JSON text spliced in verbatim. */
class Raw {
  constructor(readonly text: string) {}
}
/** An object as an ordered list of pairs, so a key may repeat. */
class Obj {
  constructor(public pairs: Array<[string, unknown]>) {}
  get(key: string): unknown {
    return this.pairs.find(([k]) => k === key)?.[1];
  }
  set(key: string, value: unknown): void {
    const p = this.pairs.find(([k]) => k === key);
    if (p) p[1] = value;
    else this.pairs.push([key, value]);
  }
}

function toModel(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(toModel);
  if (v !== null && typeof v === "object") return new Obj(Object.entries(v).map(([k, x]) => [k, toModel(x)]));
  return v;
}

function ser(v: unknown): string {
  if (v instanceof Raw) return v.text;
  if (v instanceof Obj) return `{${v.pairs.map(([k, x]) => `${JSON.stringify(k)}:${ser(x)}`).join(",")}}`;
  if (Array.isArray(v)) return `[${v.map(ser).join(",")}]`;
  if (v === undefined) return "null";
  return JSON.stringify(v);
}

function clone(v: unknown): unknown {
  if (v instanceof Obj) return new Obj(v.pairs.map(([k, x]) => [k, clone(x)]));
  if (Array.isArray(v)) return v.map(clone);
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// Seed files

interface SeedSpec {
  readonly name: string;
  readonly tensors: ReadonlyArray<readonly [string, DType, readonly number[]]>;
  readonly metadata?: Record<string, string>;
}

const SEED_SPECS: readonly SeedSpec[] = [
  {
    name: "mixed",
    tensors: [
      ["w.f32", "F32", [2, 3]],
      ["w.f16", "F16", [4]],
      ["w.bf16", "BF16", [3, 2]],
      ["ids.i64", "I64", [2]],
      ["q.i8", "I8", [5]],
      ["px.u8", "U8", [3]],
      ["mask", "BOOL", [4]],
      ["f8", "F8_E4M3", [4]],
      ["scalar", "F32", []],
      ["empty", "BF16", [0, 5]],
    ],
    metadata: { format: "pt", note: "ünïcödé" },
  },
  { name: "single", tensors: [["x", "F32", [3]]] },
  {
    name: "zero-sizes",
    tensors: [
      ["a", "I64", [0]],
      ["b", "F16", []],
      ["c", "U8", [0, 0, 3]],
      ["d", "I8", [1, 1, 1]],
      ["e", "F32", [2, 0]],
      ["f", "BOOL", [2]],
    ],
    metadata: {},
  },
  {
    name: "larger",
    tensors: [
      ["embed", "F32", [64, 32]],
      ["bias", "F16", [32]],
      ["s", "BOOL", []],
      ["pos", "I64", [16]],
    ],
    metadata: { format: "pt" },
  },
  { name: "metadata-only", tensors: [], metadata: { format: "pt", "a key": "a value" } },
  { name: "empty", tensors: [] },
];

interface Seed {
  readonly name: string;
  readonly bytes: Uint8Array;
  /** Length of the JSON header (N). */
  readonly n: number;
  readonly header: Obj;
  readonly data: Uint8Array;
}

function buildSeed(dir: string, spec: SeedSpec, rng: Rng): Seed {
  const tensors: Array<[string, Tensor]> = spec.tensors.map(([name, dtype, shape]) => {
    const count = shape.reduce((a, b) => a * b, 1);
    const storage = allocStorage(dtype, count);
    storageBytes(storage).set(rng.bytes(storage.byteLength));
    return [name, makeTensor(dtype, shape, storage)];
  });
  const path = join(dir, `seed-${spec.name}.safetensors`);
  saveSafetensors(path, tensors, spec.metadata);
  const bytes = new Uint8Array(readFileSync(path));
  const n = Number(Buffer.from(bytes).readBigUInt64LE(0));
  const header = toModel(JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)))) as Obj;
  return { name: spec.name, bytes, n, header, data: bytes.slice(8 + n) };
}

// ---------------------------------------------------------------------------------------------------------------
// Mutations

interface Mutant {
  readonly bytes: Uint8Array;
  readonly what: string;
  /** Only data bytes changed: the file must still open and read. */
  readonly mustRead?: boolean;
}

function u64(bytes: Uint8Array, value: bigint): void {
  new DataView(bytes.buffer, bytes.byteOffset, 8).setBigUint64(0, BigInt.asUintN(64, value), true);
}

function assemble(json: Uint8Array, data: Uint8Array, rng: Rng, lengthOverride?: bigint): Uint8Array {
  const pad = rng.bool(0.5) ? (8 - (json.length % 8)) % 8 : 0;
  const out = new Uint8Array(8 + json.length + pad + data.length);
  u64(out, lengthOverride ?? BigInt(json.length + pad));
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + json.length + pad);
  out.set(data, 8 + json.length + pad);
  return out;
}

const enc = new TextEncoder();

/** A structured edit of the header, re-encoded with a consistent length prefix (mostly). */
function structured(seed: Seed, rng: Rng, edit: (h: Obj) => string): Mutant {
  const h = clone(seed.header) as Obj;
  const what = edit(h);
  const json = enc.encode(ser(h));
  // One in ten keeps the seed's original length prefix, so the header and the prefix disagree.
  const keep = rng.bool(0.1);
  return {
    bytes: assemble(json, seed.data, rng, keep ? BigInt(seed.n) : undefined),
    what: keep ? `${what} (stale length prefix ${seed.n})` : what,
  };
}

function tensorEntries(h: Obj): Array<[string, Obj]> {
  return h.pairs.filter((p): p is [string, Obj] => p[0] !== "__metadata__" && p[1] instanceof Obj);
}

function numberLike(rng: Rng, dataLength: number, near: number): Raw {
  return new Raw(
    rng.pick([
      "-1",
      "-8",
      "-0",
      "0",
      "1",
      "2",
      "3",
      "4",
      "7",
      "8",
      String(dataLength),
      String(dataLength + 1),
      String(Math.max(0, dataLength - 1)),
      String(near + 1),
      String(Math.max(0, near - 1)),
      String(near + 8),
      String(near * 2),
      "2147483648",
      "4294967296",
      "9007199254740991",
      "9007199254740993",
      "18446744073709551616",
      "1e300",
      "1e400",
      "-1e400",
      "1.5",
      "0.5",
      `${near}.0`,
      `${near}e0`,
      `"${near}"`,
      '"4"',
      "null",
      "true",
      "[]",
      "{}",
      `[${near}]`,
    ]),
  );
}

const BAD_DTYPES = [
  "f32",
  "float32",
  "F128",
  "Q4_0",
  "F8_E4M3FN",
  "",
  " F32",
  "F32 ",
  "BF16\u0000",
  "I4",
  "C64",
  "__proto__",
  "toString",
  "constructor",
  "ＦＳ32",
];
const GOOD_DTYPES = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL"];

type Mutator = (seed: Seed, rng: Rng) => Mutant;

const MUTATORS: ReadonlyArray<readonly [string, Mutator]> = [
  [
    "length-bitflip",
    (seed, rng) => {
      const b = seed.bytes.slice();
      const flips: string[] = [];
      for (let k = rng.range(1, 3); k > 0; k--) {
        const i = rng.int(8);
        const bit = rng.int(8);
        b[i] ^= 1 << bit;
        flips.push(`byte ${i} bit ${bit}`);
      }
      return { bytes: b, what: `flip length prefix ${flips.join(", ")}` };
    },
  ],
  [
    "length-set",
    (seed, rng) => {
      const size = seed.bytes.length;
      const v = rng.pick<bigint>([
        0n,
        1n,
        2n,
        7n,
        BigInt(seed.n - 1),
        BigInt(seed.n + 1),
        BigInt(seed.n + 8),
        BigInt(size - 8),
        BigInt(size - 7),
        BigInt(size),
        BigInt(size + 1_000_000),
        100_000_000n,
        100_000_001n,
        1n << 32n,
        (1n << 53n) + 1n,
        1n << 63n,
        (1n << 64n) - 1n,
        BigInt(rng.int(2 ** 31)) * BigInt(rng.int(2 ** 31)),
      ]);
      const b = seed.bytes.slice();
      u64(b, v);
      return { bytes: b, what: `length prefix := ${v}` };
    },
  ],
  [
    "header-byteflip",
    (seed, rng) => {
      const b = seed.bytes.slice();
      const flips: string[] = [];
      for (let k = rng.range(1, 4); k > 0; k--) {
        const i = 8 + rng.int(seed.n);
        const old = b[i]!;
        b[i] = rng.bool() ? old ^ (1 << rng.int(8)) : rng.int(256);
        flips.push(`@${i} 0x${old.toString(16)}->0x${b[i]!.toString(16)}`);
      }
      return { bytes: b, what: `header bytes ${flips.join(", ")}` };
    },
  ],
  [
    "header-syntax",
    (seed, rng) => {
      const json = Array.from(seed.bytes.subarray(8, 8 + seed.n));
      const alphabet = enc.encode('{}[]":,0123456789-+.eE \\untlfrsa_');
      const ops: string[] = [];
      for (let k = rng.range(1, 3); k > 0; k--) {
        const i = rng.int(json.length + 1);
        const op = rng.int(3);
        const c = alphabet[rng.int(alphabet.length)]!;
        if (op === 0 && json.length > 0) {
          ops.push(`delete @${i}`);
          json.splice(Math.min(i, json.length - 1), 1);
        } else if (op === 1) {
          ops.push(`insert ${JSON.stringify(String.fromCharCode(c))} @${i}`);
          json.splice(i, 0, c);
        } else if (json.length > 0) {
          ops.push(`replace @${i} with ${JSON.stringify(String.fromCharCode(c))}`);
          json[Math.min(i, json.length - 1)] = c;
        }
      }
      const fix = rng.bool(0.8);
      const bytes = assemble(new Uint8Array(json), seed.data, rng, fix ? undefined : BigInt(seed.n));
      return { bytes, what: `header text ${ops.join(", ")}${fix ? "" : " (stale length prefix)"}` };
    },
  ],
  [
    "header-numbers",
    (seed, rng) => {
      const text = new TextDecoder().decode(seed.bytes.subarray(8, 8 + seed.n)).trimEnd();
      const numbers = [...text.matchAll(/-?\d+(\.\d+)?([eE][-+]?\d+)?/g)];
      if (numbers.length === 0) return { bytes: seed.bytes.slice(), what: "no numbers: unchanged" };
      const m = rng.pick(numbers);
      const near = Number(m[0]);
      const repl = numberLike(rng, seed.data.length, Number.isFinite(near) ? near : 0).text;
      const out = text.slice(0, m.index) + repl + text.slice(m.index! + m[0].length);
      return {
        bytes: assemble(enc.encode(out), seed.data, rng),
        what: `number ${m[0]} at char ${m.index} := ${repl}`,
      };
    },
  ],
  [
    "offsets",
    (seed, rng) =>
      structured(seed, rng, (h) => {
        const ts = tensorEntries(h);
        if (ts.length === 0) {
          h.set(
            "t",
            new Obj([
              ["dtype", "U8"],
              ["shape", [4]],
              ["data_offsets", [numberLike(rng, 0, 0), 4]],
            ]),
          );
          return "added tensor 't' with odd data_offsets";
        }
        const [name, t] = rng.pick(ts);
        const offs = [...(t.get("data_offsets") as unknown[])];
        const i = rng.int(2);
        const near = offs[i] as number;
        offs[i] = numberLike(rng, seed.data.length, near);
        t.set("data_offsets", offs);
        return `'${name}' data_offsets[${i}] := ${(offs[i] as Raw).text}`;
      }),
  ],
  [
    "offsets-shuffle",
    (seed, rng) =>
      structured(seed, rng, (h) => {
        const ts = tensorEntries(h);
        if (ts.length === 0) {
          h.set(
            "t",
            new Obj([
              ["dtype", "F32"],
              ["shape", []],
              ["data_offsets", [0, 4]],
            ]),
          );
          return "added tensor 't' with no data behind it";
        }
        const [name, t] = rng.pick(ts);
        const [other, u] = rng.pick(ts);
        const offs = t.get("data_offsets") as number[];
        switch (rng.int(6)) {
          case 0: {
            t.set("data_offsets", u.get("data_offsets"));
            u.set("data_offsets", offs);
            return `swap data_offsets of '${name}' and '${other}'`;
          }
          case 1:
            t.set("data_offsets", [offs[1], offs[0]]);
            return `'${name}' data_offsets reversed`;
          case 2:
            t.set("data_offsets", rng.pick([[], [offs[0]], [offs[0], offs[1], offs[1]], null, offs[0], "0,4"]));
            return `'${name}' data_offsets := ${ser(t.get("data_offsets"))}`;
          case 3:
            t.set("data_offsets", u.get("data_offsets"));
            return `'${name}' data_offsets := those of '${other}'`;
          case 4: {
            const d = rng.pick([1, -1, 2, -2, 4, 8]);
            t.set("data_offsets", [offs[0]! + d, offs[1]! + d]);
            return `'${name}' data_offsets shifted by ${d}`;
          }
          default: {
            t.set("data_offsets", [new Raw(`${offs[0]}.5`), new Raw(`${offs[1]}.5`)]);
            return `'${name}' data_offsets fractional`;
          }
        }
      }),
  ],
  [
    "shape",
    (seed, rng) =>
      structured(seed, rng, (h) => {
        const ts = tensorEntries(h);
        if (ts.length === 0) {
          h.set(
            "t",
            new Obj([
              ["dtype", "I8"],
              ["shape", [0]],
              ["data_offsets", [0, 0]],
            ]),
          );
          return "added zero-size tensor 't'";
        }
        const [name, t] = rng.pick(ts);
        const shape = [...(t.get("shape") as unknown[])];
        switch (rng.int(6)) {
          case 0:
            if (shape.length > 0) {
              const i = rng.int(shape.length);
              shape[i] = numberLike(rng, seed.data.length, shape[i] as number);
            } else shape.push(numberLike(rng, seed.data.length, 1));
            break;
          case 1:
            shape.splice(rng.int(shape.length + 1), 0, rng.pick([0, 1, 2, 3]));
            break;
          case 2:
            if (shape.length > 0) shape.splice(rng.int(shape.length), 1);
            else shape.push(0);
            break;
          case 3:
            shape.reverse();
            shape.push(1);
            break;
          case 4:
            t.set(
              "shape",
              rng.pick([null, 4, "4", {}, [[2]], [4294967296, 4294967296], [2 ** 26, 2 ** 26, 2 ** 26, 0]]),
            );
            return `'${name}' shape := ${ser(t.get("shape"))}`;
          default:
            shape.push(0);
            break;
        }
        t.set("shape", shape);
        return `'${name}' shape := ${ser(shape)}`;
      }),
  ],
  [
    "dtype",
    (seed, rng) =>
      structured(seed, rng, (h) => {
        const ts = tensorEntries(h);
        if (ts.length === 0) {
          h.set(
            "t",
            new Obj([
              ["dtype", rng.pick(BAD_DTYPES)],
              ["shape", []],
              ["data_offsets", [0, 0]],
            ]),
          );
          return "added tensor 't' with a bad dtype";
        }
        const [name, t] = rng.pick(ts);
        const old = t.get("dtype") as string;
        const choice = rng.int(4);
        const v =
          choice === 0
            ? rng.pick(BAD_DTYPES)
            : choice === 1
              ? old.toLowerCase()
              : choice === 2
                ? rng.pick(GOOD_DTYPES)
                : rng.pick<unknown>([null, 32, ["F32"], { F32: true }, true]);
        t.set("dtype", v);
        return `'${name}' dtype ${old} := ${ser(v)}`;
      }),
  ],
  [
    "keys",
    (seed, rng) =>
      structured(seed, rng, (h) => {
        const ts = tensorEntries(h);
        const op = ts.length === 0 ? rng.pick([4, 5, 6]) : rng.int(8);
        const [name, t] = ts.length === 0 ? ["", new Obj([])] : rng.pick(ts);
        switch (op) {
          case 0: {
            const k = rng.pick(["dtype", "shape", "data_offsets"]);
            t.pairs = t.pairs.filter(([x]) => x !== k);
            return `'${name}' field ${k} deleted`;
          }
          case 1: {
            h.pairs = h.pairs.filter(([x]) => x !== name);
            return `tensor '${name}' deleted`;
          }
          case 2: {
            const i = h.pairs.findIndex(([x]) => x === name);
            h.pairs.splice(rng.int(h.pairs.length + 1), 0, [name, clone(h.pairs[i]![1])]);
            return `tensor '${name}' duplicated`;
          }
          case 3: {
            const p = rng.pick(t.pairs);
            t.pairs.push([p[0], clone(p[1])]);
            return `'${name}' field ${p[0]} duplicated`;
          }
          case 4: {
            const k = rng.pick(["extra", "offsets", "Dtype", "data_offset", "__proto__"]);
            const target = ts.length === 0 ? h : t;
            target.pairs.push([k, rng.pick<unknown>([1, "x", null, [], new Obj([])])]);
            return ts.length === 0 ? `top-level key ${k} added` : `'${name}' unknown field ${k}`;
          }
          case 5: {
            const k = rng.pick(["weird", "", " ", "__metadata", "__METADATA__", "\u0000"]);
            h.pairs.splice(rng.int(h.pairs.length + 1), 0, [
              k,
              rng.pick<unknown>([1, "x", null, [], true, new Obj([])]),
            ]);
            return `top-level key ${JSON.stringify(k)} added`;
          }
          case 6: {
            const dup = h.pairs.find(([k]) => k === "__metadata__");
            if (dup) h.pairs.push(["__metadata__", clone(dup[1])]);
            else h.pairs.unshift(["__metadata__", new Obj([["format", "pt"]])], ["__metadata__", new Obj([])]);
            return "__metadata__ duplicated";
          }
          default: {
            const i = h.pairs.findIndex(([x]) => x === name);
            const newName = rng.pick(["__metadata__", "", "\u00e9", "a\u0000b", "__proto__", ts[0]![0]]);
            h.pairs[i]![0] = newName;
            return `tensor '${name}' renamed to ${JSON.stringify(newName)}`;
          }
        }
      }),
  ],
  [
    "metadata",
    (seed, rng) =>
      structured(seed, rng, (h) => {
        const meta = h.get("__metadata__");
        const op = rng.int(4);
        if (op === 0 || !(meta instanceof Obj)) {
          const v = rng.pick<unknown>([[], "pt", 1, true, new Obj([["k", 1]]), [["format", "pt"]]]);
          h.set("__metadata__", v);
          return `__metadata__ := ${ser(v)}`;
        }
        if (op === 1 || meta.pairs.length === 0) {
          const v = rng.pick<unknown>([1, null, true, [], new Obj([]), 1.5, ["pt"]]);
          meta.pairs.push(["k", v]);
          return `__metadata__.k := ${ser(v)}`;
        }
        const p = rng.pick(meta.pairs);
        if (op === 2) {
          meta.pairs.push([p[0], "again"]);
          return `__metadata__.${p[0]} duplicated`;
        }
        p[1] = rng.pick<unknown>([0, null, false, ["x"], new Obj([["a", "b"]])]);
        return `__metadata__.${p[0]} := ${ser(p[1])}`;
      }),
  ],
  [
    "header-form",
    (seed, rng) => {
      const text = ser(seed.header);
      const raw = (s: string | Uint8Array) => assemble(typeof s === "string" ? enc.encode(s) : s, seed.data, rng);
      const op = rng.int(12);
      const bytes = (() => {
        switch (op) {
          case 0:
            return raw(`[${text}]`);
          case 1:
            return raw(` ${text}`);
          case 2:
            return raw(`${text}\t\r\n`);
          case 3:
            return raw(rng.pick(["null", '"x"', "123", "true", "[]", "{", "}"]));
          case 4: {
            // invalid UTF-8 inside a string: a lone continuation byte, an overlong NUL, an encoded surrogate, 0xff
            const bad = rng.pick([[0x80], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xff], [0xe2, 0x82]]);
            const b = enc.encode(text);
            const at = text.indexOf('"') + 1;
            return raw(new Uint8Array([...b.subarray(0, at), ...bad, ...b.subarray(at)]));
          }
          case 5:
            return raw(`${text}${rng.pick(["x", "}", ",", "{}", "\u0000"])}`);
          case 6:
            return raw(text.replace("{", "{\n  ").replaceAll(",", ",\n  "));
          case 7: {
            const b = enc.encode(text);
            const out = new Uint8Array(b.length + 8);
            out.set(b);
            return raw(out); // NUL padding instead of spaces
          }
          case 8:
            return raw("{}");
          case 9:
            return raw(`{"__metadata__":{}}`);
          case 10:
            return raw(text.slice(0, rng.range(1, text.length - 1)));
          default:
            return raw(`${"[".repeat(rng.range(1, 64))}`);
        }
      })();
      return { bytes, what: `header form #${op}` };
    },
  ],
  [
    "relayout",
    (seed, rng) => {
      // Lay the tensors out afresh and resize the data section to match: a permuted order (a valid file, which must
      // read), or one tensor pulled back over its predecessor (overlap) or pushed forward (hole).
      const h = clone(seed.header) as Obj;
      const order = tensorEntries(h).map(([name, t]) => {
        const [b, e] = t.get("data_offsets") as number[];
        return { name, t, size: e! - b! };
      });
      const policy = order.length < 2 ? 0 : rng.int(3);
      if (policy === 0) {
        for (let i = order.length - 1; i > 0; i--) {
          const j = rng.int(i + 1);
          [order[i], order[j]] = [order[j]!, order[i]!];
        }
      }
      const at = order.length < 2 ? -1 : rng.range(1, order.length - 1);
      let cursor = 0;
      let what = `permuted to ${order.map((o) => o.name).join(", ")}`;
      for (const [i, o] of order.entries()) {
        if (i === at && policy === 1) {
          const k = rng.range(1, Math.max(1, order[i - 1]!.size));
          cursor = Math.max(0, cursor - k);
          what = `'${o.name}' pulled back ${k} bytes over '${order[i - 1]!.name}'`;
        } else if (i === at && policy === 2) {
          const k = rng.range(1, 16);
          cursor += k;
          what = `'${o.name}' pushed forward ${k} bytes`;
        }
        o.t.set("data_offsets", [cursor, cursor + o.size]);
        cursor += o.size;
      }
      const data = new Uint8Array(cursor);
      data.set(seed.data.subarray(0, cursor));
      return { bytes: assemble(enc.encode(ser(h)), data, rng), what, mustRead: policy === 0 };
    },
  ],
  [
    "truncate",
    (seed, rng) => {
      const size = seed.bytes.length;
      const at = rng.bool(0.5) ? rng.int(Math.min(size, 8 + seed.n + 1)) : rng.int(size);
      return { bytes: seed.bytes.slice(0, at), what: `truncated to ${at} of ${size} bytes` };
    },
  ],
  [
    "append",
    (seed, rng) => {
      const extra = rng.bool(0.2) ? new Uint8Array(rng.pick([1, 8])) : rng.bytes(rng.range(1, 64));
      const b = new Uint8Array(seed.bytes.length + extra.length);
      b.set(seed.bytes);
      b.set(extra, seed.bytes.length);
      return { bytes: b, what: `${extra.length} trailing bytes appended` };
    },
  ],
  [
    "data-byteflip",
    (seed, rng) => {
      const b = seed.bytes.slice();
      const start = 8 + seed.n;
      if (b.length === start) return { bytes: b, what: "no data section: unchanged", mustRead: true };
      const count = rng.range(1, 16);
      for (let k = 0; k < count; k++) b[start + rng.int(b.length - start)] = rng.int(256);
      return { bytes: b, what: `${count} data bytes rewritten`, mustRead: true };
    },
  ],
  [
    "stacked",
    (seed, rng) => {
      const byteLevel = ["length-bitflip", "header-byteflip", "truncate", "append", "data-byteflip"];
      let cur: Seed = seed;
      const whats: string[] = [];
      let bytes = seed.bytes;
      for (let k = rng.range(2, 3); k > 0; k--) {
        const pick = rng.pick(byteLevel);
        const [kind, m] = MUTATORS.find(([name]) => name === pick)!;
        const out = m(cur, rng);
        whats.push(`${kind}: ${out.what}`);
        bytes = out.bytes;
        // Later byte-level edits address the mutated bytes; keep the seed's layout only as a guide, clamped.
        const n = bytes.length >= 8 ? Number(Buffer.from(bytes.subarray(0, 8)).readBigUInt64LE(0)) : 0;
        const nn = Math.max(0, Math.min(n, bytes.length - 8));
        cur = { ...cur, bytes, n: nn, data: bytes.slice(Math.min(bytes.length, 8 + nn)) };
        if (bytes.length < 9) break;
      }
      return { bytes, what: whats.join(" | ") };
    },
  ],
];

// ---------------------------------------------------------------------------------------------------------------
// Instrumentation: every readSync the reader issues, and every descriptor it opens

interface ReadCall {
  readonly fd: number;
  readonly length: number;
  readonly position: number;
}

const io = {
  reads: [] as ReadCall[],
  open: new Set<number>(),
  opened: 0,
};
const realReadSync = fs.readSync;
const realOpenSync = fs.openSync;
const realCloseSync = fs.closeSync;

function installSpies(): void {
  (fs as { readSync: unknown }).readSync = (...args: unknown[]) => {
    // readExactSync calls readSync(fd, buffer, offset, length, position)
    const [fd, , , length, position] = args as [number, unknown, number, number, number | bigint | null];
    io.reads.push({ fd, length: Number(length), position: position === null ? -1 : Number(position) });
    return (realReadSync as (...a: unknown[]) => number)(...args);
  };
  (fs as { openSync: unknown }).openSync = (...args: unknown[]) => {
    const fd = (realOpenSync as (...a: unknown[]) => number)(...args);
    io.open.add(fd);
    io.opened++;
    return fd;
  };
  (fs as { closeSync: unknown }).closeSync = (fd: number) => {
    io.open.delete(fd);
    return realCloseSync(fd);
  };
  syncBuiltinESMExports();
}

function removeSpies(): void {
  (fs as { readSync: unknown }).readSync = realReadSync;
  (fs as { openSync: unknown }).openSync = realOpenSync;
  (fs as { closeSync: unknown }).closeSync = realCloseSync;
  syncBuiltinESMExports();
}

// ---------------------------------------------------------------------------------------------------------------
// The oracle

const READ_ERROR_CODES = new Set(["SAFETENSORS_HEADER", "SAFETENSORS_TRUNCATED", "UNSUPPORTED_DTYPE"]);
const CASE_BUDGET_MS = 2000;

interface Outcome {
  readonly ok: boolean;
  readonly code?: string;
  readonly ms: number;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Whether any object in `text` (JSON that JSON.parse accepts) repeats a key. A recursive descent written
 * independently of src/io/json-keys.ts; only run on headers the reader accepted, which are shallow.
 */
function hasDuplicateKey(text: string): boolean {
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  const str = (): string => {
    const start = i++;
    while (text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (): boolean => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      ws();
      if (text[i] === "}") {
        i++;
        return false;
      }
      const keys = new Set<string>();
      for (;;) {
        ws();
        const k = str();
        if (keys.has(k)) return true;
        keys.add(k);
        ws();
        i++; // ':'
        if (value()) return true;
        ws();
        if (text[i++] === "}") return false;
      }
    }
    if (c === "[") {
      i++;
      ws();
      if (text[i] === "]") {
        i++;
        return false;
      }
      for (;;) {
        if (value()) return true;
        ws();
        if (text[i++] === "]") return false;
      }
    }
    if (c === '"') str();
    else while (i < text.length && !",}] \t\n\r".includes(text[i]!)) i++;
    return false;
  };
  return value();
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Open `path` (holding `bytes`) and read everything; returns the outcome or throws an AssertionError. */
function runCase(path: string, bytes: Uint8Array, label: string, mustRead: boolean): Outcome {
  const file = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  io.reads = [];
  io.open.clear();
  const t0 = performance.now();
  let f: SafetensorsFile | undefined;
  let outcome: Outcome;
  try {
    f = SafetensorsFile.open(path);
  } catch (e) {
    if (!(e instanceof FusionError)) {
      const err = e as Error;
      assert.fail(`${label}: open threw ${err?.constructor?.name ?? typeof e} (not FusionError): ${err?.message}`);
    }
    assert.ok(!mustRead, `${label}: only data bytes changed, yet open failed: [${e.code}] ${e.message}`);
    assert.ok(typeof e.code === "string" && e.code.length > 0, `${label}: FusionError without a code`);
    assert.ok(READ_ERROR_CODES.has(e.code), `${label}: unexpected code ${e.code}: ${e.message}`);
    assert.ok(e.message.includes(path), `${label}: message does not name the file: ${e.message}`);
    assert.equal(e.file, path, `${label}: error.file`);
    outcome = { ok: false, code: e.code, ms: 0 };
  }
  if (f !== undefined) {
    try {
      const h = f.header;
      assert.equal(f.fileSize, file.length, `${label}: fileSize`);
      const n = Number(file.readBigUInt64LE(0));
      assert.equal(h.headerLength, n, `${label}: headerLength vs prefix`);
      assert.equal(h.dataStart, 8 + n, `${label}: dataStart`);
      assert.equal(h.dataStart + h.dataLength, file.length, `${label}: data section must end at the end of file`);
      // An independent reading of the same header text must agree with what the reader accepted.
      let text: string;
      try {
        text = strictUtf8.decode(file.subarray(8, 8 + n));
      } catch {
        assert.fail(`${label}: accepted a header that is not valid UTF-8`);
      }
      assert.ok(text.startsWith("{"), `${label}: accepted a header that does not start with '{'`);
      assert.ok(!hasDuplicateKey(text), `${label}: accepted a header that repeats a key`);
      const parsed = JSON.parse(text) as Record<string, unknown>;
      const expectedNames = Object.keys(parsed)
        .filter((k) => k !== "__metadata__")
        .sort();
      assert.deepEqual(f.names().slice().sort(), expectedNames, `${label}: tensor names`);
      const meta = parsed.__metadata__;
      if (meta !== undefined && meta !== null) {
        assert.ok(typeof meta === "object" && !Array.isArray(meta), `${label}: accepted a non-object __metadata__`);
        for (const [k, v] of Object.entries(meta)) {
          assert.equal(typeof v, "string", `${label}: accepted a non-string __metadata__.${k}`);
        }
      }
      assert.deepEqual(f.metadata, meta === null ? undefined : meta, `${label}: metadata`);
      let cursor = 0;
      for (const t of f.tensors) {
        const entry = parsed[t.name] as { dtype: string; shape: number[]; data_offsets: number[] };
        assert.deepEqual(Object.keys(entry).sort(), ["data_offsets", "dtype", "shape"], `${label}: '${t.name}' fields`);
        assert.equal(t.dtype, entry.dtype, `${label}: '${t.name}' dtype`);
        assert.deepEqual([...t.shape], entry.shape, `${label}: '${t.name}' shape`);
        assert.deepEqual([t.begin, t.end], entry.data_offsets, `${label}: '${t.name}' offsets`);
        // (=== rather than Object.is: a header may spell an offset -0, which is 0)
        assert.ok(t.begin === cursor, `${label}: '${t.name}' begins at ${t.begin}, previous tensor ends at ${cursor}`);
        cursor = t.end;
        assert.ok(t.begin >= 0 && t.begin <= t.end, `${label}: '${t.name}' offsets ${t.begin}..${t.end}`);
        assert.ok(h.dataStart + t.end <= file.length, `${label}: '${t.name}' ends past the end of the file`);
        const expected = file.subarray(h.dataStart + t.begin, h.dataStart + t.end);
        const got = f.readBytes(t.name);
        assert.ok(Buffer.from(got).equals(expected), `${label}: '${t.name}' readBytes differs from the file`);
        const tensor = f.read(t.name);
        const count = product(t.shape);
        assert.ok(
          tensor.data.length === count,
          `${label}: '${t.name}' has ${tensor.data.length} elements, not ${count}`,
        );
        assert.equal(tensor.dtype, t.dtype, `${label}: '${t.name}' tensor dtype`);
        assert.ok(Buffer.from(storageBytes(tensor.data)).equals(expected), `${label}: '${t.name}' read() bytes`);
      }
      assert.equal(cursor, h.dataLength, `${label}: tensors do not cover the data section`);
      outcome = { ok: true, ms: 0 };
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      const err = e as Error;
      assert.fail(
        `${label}: open succeeded but reading threw ${err?.constructor?.name}: ${err?.message} (a validated header ` +
          "must make every tensor readable)",
      );
    } finally {
      f.close();
    }
  }
  const ms = performance.now() - t0;
  for (const r of io.reads) {
    assert.ok(
      r.position >= 0 && r.position + r.length <= file.length,
      `${label}: read of ${r.length} bytes at ${r.position} outside the ${file.length}-byte file`,
    );
  }
  assert.equal(io.open.size, 0, `${label}: ${io.open.size} file descriptor(s) left open`);
  assert.ok(ms < CASE_BUDGET_MS, `${label}: took ${ms.toFixed(0)} ms`);
  return { ...outcome!, ms };
}

// ---------------------------------------------------------------------------------------------------------------

describe(`safetensors reader fuzz (seed ${SEED_HEX}, ${CASES} cases; FUSIONKIT_FUZZ_SEED to change)`, () => {
  const dir = tempDir("fuzz");
  const seeds: Seed[] = [];

  before(() => {
    const rng = new Rng(SEED ^ 0x9e3779b9);
    for (const spec of SEED_SPECS) seeds.push(buildSeed(dir, spec, rng));
    installSpies();
  });
  after(() => removeSpies());

  it("the instrumentation sees the reader's opens and reads", () => {
    const seed = seeds[0]!;
    const path = join(dir, "probe.safetensors");
    writeFileSync(path, seed.bytes);
    const out = runCase(path, seed.bytes, "unmutated seed", true);
    assert.equal(out.ok, true);
    assert.ok(io.opened > 0, "openSync spy saw no open: the descriptor check would be vacuous");
    assert.ok(io.reads.length >= 2 + SEED_SPECS[0]!.tensors.length, "readSync spy saw too few reads");
  });

  it("every unmutated seed reads back", () => {
    for (const seed of seeds) {
      const path = join(dir, `plain-${seed.name}.safetensors`);
      writeFileSync(path, seed.bytes);
      assert.equal(runCase(path, seed.bytes, `seed ${seed.name}`, true).ok, true);
    }
  });

  it(`${CASES} mutated files: each a typed FusionError naming the file or a correct read`, (t) => {
    const rng = new Rng(SEED);
    const stats = new Map<string, { cases: number; ok: number; codes: Map<string, number> }>();
    const codes = new Map<string, number>();
    let total = 0;
    let ok = 0;
    let slowest = { ms: 0, label: "" };
    const t0 = performance.now();
    for (let i = 0; i < CASES; i++) {
      const [kind, mutate] = MUTATORS[i % MUTATORS.length]!;
      const seed = rng.pick(seeds);
      const m = mutate(seed, rng);
      const label = `case ${i} (FUSIONKIT_FUZZ_SEED=${SEED_HEX}) seed file '${seed.name}', ${kind}: ${m.what}`;
      // A fresh name per case: rewriting one file in place makes ext4 (auto_da_alloc) flush it on every close.
      const path = join(dir, `case-${i}.safetensors`);
      writeFileSync(path, m.bytes);
      let out: Outcome;
      try {
        out = runCase(path, m.bytes, label, m.mustRead === true);
      } catch (e) {
        const keep = join(tmpdir(), `fusionkit-fuzz-${SEED_HEX}-case${i}.safetensors`);
        copyFileSync(path, keep);
        if (e instanceof Error) e.message = `${e.message}\n  failing bytes kept in ${keep}`;
        throw e;
      }
      rmSync(path);
      total++;
      if (out.ok) ok++;
      else codes.set(out.code!, (codes.get(out.code!) ?? 0) + 1);
      const s = stats.get(kind) ?? { cases: 0, ok: 0, codes: new Map() };
      s.cases++;
      if (out.ok) s.ok++;
      else s.codes.set(out.code!, (s.codes.get(out.code!) ?? 0) + 1);
      stats.set(kind, s);
      if (out.ms > slowest.ms) slowest = { ms: out.ms, label };
    }
    const elapsed = performance.now() - t0;
    t.diagnostic(
      `seed ${SEED_HEX}: ${total} cases in ${(elapsed / 1000).toFixed(2)} s; ${ok} read correctly, ` +
        `${total - ok} refused (${[...codes].map(([c, k]) => `${c} ${k}`).join(", ")}); ` +
        `slowest ${slowest.ms.toFixed(1)} ms`,
    );
    for (const [kind, s] of stats) {
      t.diagnostic(
        `  ${kind}: ${s.cases} cases, ${s.ok} read, ${[...s.codes].map(([c, k]) => `${c} ${k}`).join(", ") || "no errors"}`,
      );
    }
    assert.ok(total >= MIN_CASES, `only ${total} cases ran`);
    // The fuzz must exercise both outcomes and every refusal code, or it is not testing much.
    assert.ok(ok > total / 20, `only ${ok} of ${total} cases read successfully`);
    assert.ok(total - ok > total / 2, `only ${total - ok} of ${total} cases were refused`);
    for (const c of READ_ERROR_CODES) assert.ok(codes.has(c), `no case ended in ${c}`);
    assert.equal(stats.get("data-byteflip")?.ok, stats.get("data-byteflip")?.cases, "data-only mutations must read");
    assert.ok(stats.get("offsets")!.cases > 0 && stats.get("offsets")!.ok < stats.get("offsets")!.cases);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Targeted cases with exact codes

describe("safetensors reader: targeted malformed files", () => {
  const dir = tempDir("fuzz-targeted");
  let counter = 0;

  const header = (obj: unknown) => (typeof obj === "string" ? obj : JSON.stringify(obj));
  function file(json: string | Uint8Array, data: number | Uint8Array, length?: bigint): string {
    const j = typeof json === "string" ? enc.encode(json) : json;
    const d = typeof data === "number" ? new Uint8Array(data) : data;
    const b = new Uint8Array(8 + j.length + d.length);
    u64(b, length ?? BigInt(j.length));
    b.set(j, 8);
    b.set(d, 8 + j.length);
    const path = join(dir, `t${counter++}.safetensors`);
    writeFileSync(path, b);
    return path;
  }
  function rawFile(bytes: Uint8Array): string {
    const path = join(dir, `t${counter++}.safetensors`);
    writeFileSync(path, bytes);
    return path;
  }
  function refuses(path: string, code: string, messagePart?: RegExp, tensor?: string): FusionError {
    const fds = openFdCount();
    let caught: unknown;
    try {
      SafetensorsFile.open(path).close();
    } catch (e) {
      caught = e;
    }
    assert.ok(caught instanceof FusionError, `expected a FusionError, got ${String(caught)}`);
    assert.equal(caught.code, code, caught.message);
    assert.equal(caught.file, path);
    assert.ok(caught.message.includes(path), caught.message);
    if (messagePart) assert.match(caught.message, messagePart);
    if (tensor !== undefined) {
      assert.equal(caught.tensor, tensor);
      assert.ok(caught.message.includes(`'${tensor}'`), caught.message);
    }
    assert.equal(openFdCount(), fds, "descriptor leaked on the error path");
    return caught;
  }
  const T = (dtype: unknown, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });

  it("valid baseline: a scalar, a zero-size tensor and metadata", () => {
    const path = file(header({ __metadata__: { a: "b" }, z: T("F16", [0], [4, 4]), s: T("F32", [], [0, 4]) }), 4);
    const f = SafetensorsFile.open(path);
    try {
      assert.deepEqual(f.names(), ["s", "z"]);
      assert.equal(f.read("s").data.length, 1);
      assert.equal(f.read("z").data.length, 0);
      assert.deepEqual(f.metadata, { a: "b" });
    } finally {
      f.close();
    }
  });

  it("header length over 100 MB, 0 or 1 → SAFETENSORS_HEADER", () => {
    const json = header({ a: T("U8", [1], [0, 1]) });
    refuses(file(json, 1, 100_000_001n), "SAFETENSORS_HEADER", /exceeds/);
    refuses(file(json, 1, (1n << 64n) - 1n), "SAFETENSORS_HEADER", /exceeds/);
    refuses(file(json, 1, 0n), "SAFETENSORS_HEADER", /too small/);
    refuses(file(json, 1, 1n), "SAFETENSORS_HEADER", /too small/);
  });

  it("header length past the end, or a file under 8 bytes → SAFETENSORS_TRUNCATED", () => {
    const json = header({ a: T("U8", [1], [0, 1]) });
    refuses(file(json, 1, BigInt(json.length + 2)), "SAFETENSORS_TRUNCATED", /past the end/);
    refuses(file(json, 1, 99_999_999n), "SAFETENSORS_TRUNCATED");
    refuses(rawFile(new Uint8Array(0)), "SAFETENSORS_TRUNCATED");
    refuses(rawFile(new Uint8Array(7)), "SAFETENSORS_TRUNCATED");
  });

  it("truncated data → SAFETENSORS_TRUNCATED; trailing bytes → SAFETENSORS_HEADER", () => {
    const json = header({ a: T("F32", [2], [0, 8]), b: T("I64", [1], [8, 16]) });
    refuses(file(json, 15), "SAFETENSORS_TRUNCATED", /need 16 data bytes but the file has 15/);
    refuses(file(json, 0), "SAFETENSORS_TRUNCATED");
    refuses(file(json, 17), "SAFETENSORS_HEADER", /trailing/);
  });

  it("overlap and hole → SAFETENSORS_HEADER naming the tensor", () => {
    refuses(
      file(header({ a: T("F32", [2], [0, 8]), b: T("F32", [1], [4, 8]) }), 8),
      "SAFETENSORS_HEADER",
      /overlap/,
      "b",
    );
    refuses(
      file(header({ a: T("F32", [1], [0, 4]), b: T("F32", [1], [8, 12]) }), 12),
      "SAFETENSORS_HEADER",
      /hole/,
      "b",
    );
    refuses(file(header({ a: T("F32", [1], [4, 8]) }), 8), "SAFETENSORS_HEADER", /hole/, "a");
    // two tensors on the same bytes
    refuses(file(header({ a: T("F32", [1], [0, 4]), b: T("F32", [1], [0, 4]) }), 4), "SAFETENSORS_HEADER", /overlap/);
  });

  it("unknown or misspelled dtype → UNSUPPORTED_DTYPE naming the tensor", () => {
    for (const d of ["f32", "F128", "Q4_0", "", null, 4, "__proto__", "toString"]) {
      refuses(file(header({ w: T(d, [1], [0, 4]) }), 4), "UNSUPPORTED_DTYPE", /unknown dtype/, "w");
    }
  });

  it("repeated keys → SAFETENSORS_HEADER, at any depth", () => {
    const a = '"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}';
    refuses(file(`{${a},${a}}`, 1), "SAFETENSORS_HEADER", /key 'a' appears twice/);
    refuses(
      file('{"a":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}}', 1),
      "SAFETENSORS_HEADER",
      /appears twice/,
    );
    refuses(file(`{"__metadata__":{"k":"1","k":"2"},${a}}`, 1), "SAFETENSORS_HEADER", /appears twice/);
    // the same key spelled with an escape is the same key
    refuses(file(`{${a},${a.replace('"a"', '"\\u0061"')}}`, 1), "SAFETENSORS_HEADER", /appears twice/);
  });

  it("bad offsets, shapes, fields and metadata → SAFETENSORS_HEADER", () => {
    for (const offs of [[-1, 3], [0.5, 4.5], ["0", "4"], [4, 0], [0], [0, 4, 4], null, "0,4"]) {
      refuses(file(header({ w: T("F32", [1], offs) }), 4), "SAFETENSORS_HEADER", /data_offsets/, "w");
    }
    for (const shape of [[-1], [1.5], ["1"], null, 1, [[1]]]) {
      refuses(file(header({ w: T("F32", shape, [0, 4]) }), 4), "SAFETENSORS_HEADER", /shape/, "w");
    }
    refuses(file(header({ w: T("F32", [2], [0, 4]) }), 4), "SAFETENSORS_HEADER", /needs 8 bytes/, "w");
    refuses(file(header({ w: T("F32", [2 ** 30, 2 ** 30, 2 ** 30], [0, 4]) }), 4), "SAFETENSORS_HEADER", /shape/, "w");
    refuses(file(header({ w: { ...T("F32", [1], [0, 4]), x: 1 } }), 4), "SAFETENSORS_HEADER", /unexpected field/, "w");
    refuses(file(header({ w: [1] }), 0), "SAFETENSORS_HEADER", /not an object/, "w");
    const meta = refuses(file(header({ __metadata__: { n: 1 } }), 0), "SAFETENSORS_HEADER", /strings/);
    assert.equal(meta.key, "__metadata__.n");
    refuses(file(header({ __metadata__: ["x"] }), 0), "SAFETENSORS_HEADER", /__metadata__/);
  });

  it("header not a UTF-8 JSON object → SAFETENSORS_HEADER", () => {
    refuses(file("[1,2]", 0), "SAFETENSORS_HEADER", /start with/);
    refuses(file(' {"a":1}', 0), "SAFETENSORS_HEADER", /start with/);
    refuses(file("{not json}", 0), "SAFETENSORS_HEADER", /invalid JSON/);
    refuses(file("{}x", 0), "SAFETENSORS_HEADER", /invalid JSON/);
    refuses(file(new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), 0), "SAFETENSORS_HEADER", /UTF-8/);
    refuses(file(new Uint8Array([0x7b, 0x7d, 0, 0, 0, 0, 0, 0]), 0), "SAFETENSORS_HEADER", /invalid JSON/);
  });

  // Regression tests for bugs the first version of the reader and CLI had.
  it("deeply nested JSON values are refused with a FusionError", () => {
    const deep = `${"[".repeat(10_000)}${"]".repeat(10_000)}`;
    refuses(file(`{"w":{"dtype":"F32","shape":${deep},"data_offsets":[0,4]}}`, 4), "SAFETENSORS_HEADER");
    refuses(file(`{"w":{"dtype":"F32","shape":[1],"data_offsets":${deep}}}`, 4), "SAFETENSORS_HEADER");
    refuses(file(`{"w":{"dtype":${deep},"shape":[1],"data_offsets":[0,4]}}`, 4), "UNSUPPORTED_DTYPE");
  });

  it("a header starting with a UTF-8 byte-order mark is refused (the format requires '{' at byte 8)", () => {
    const json = new Uint8Array([0xef, 0xbb, 0xbf, ...enc.encode(header({ a: T("U8", [1], [0, 1]) }))]);
    refuses(file(json, 1), "SAFETENSORS_HEADER", /start with/);
  });

  it("a __metadata__ key named __proto__ is kept (or refused), never silently dropped", () => {
    const path = file('{"__metadata__":{"__proto__":"x","format":"pt"}}', 0);
    let meta: Readonly<Record<string, string>> | undefined;
    try {
      const f = SafetensorsFile.open(path);
      meta = f.metadata;
      f.close();
    } catch (e) {
      assert.ok(e instanceof FusionError);
      return;
    }
    assert.deepEqual(Object.entries(meta ?? {}), [
      ["__proto__", "x"],
      ["format", "pt"],
    ]);
  });
});
