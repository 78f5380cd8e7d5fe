import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FusionError } from "../../src/errors.js";
import { castTensor, decodeToF32, encodeFromF32, fromFloat32, toFloat32 } from "../../src/tensor/convert.js";
import { allocStorage, DTYPES, dtypeSize, parseDType, viewStorage } from "../../src/tensor/dtype.js";
import { f16BitsToF32 } from "../../src/tensor/float16.js";
import { makeTensor } from "../../src/tensor/tensor.js";

const EDGE = new Float32Array([
  0,
  -0,
  1,
  -1,
  0.1,
  65504,
  2 ** -24,
  2 ** -133,
  3.4e38,
  -3.4e38,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  Number.NaN,
]);

describe("dtype table", () => {
  it("knows every safetensors dtype and its size", () => {
    const sizes = Object.fromEntries(DTYPES.map((d) => [d, dtypeSize(d)]));
    assert.deepEqual(sizes, {
      F64: 8,
      F32: 4,
      F16: 2,
      BF16: 2,
      I64: 8,
      I32: 4,
      I16: 2,
      I8: 1,
      U64: 8,
      U32: 4,
      U16: 2,
      U8: 1,
      BOOL: 1,
      F8_E4M3: 1,
      F8_E5M2: 1,
    });
  });

  it("rejects unknown names with a typed error naming where they came from", () => {
    assert.throws(
      () => parseDType("float32", { file: "x.safetensors", tensor: "w" }),
      (e: unknown) =>
        e instanceof FusionError && e.code === "UNSUPPORTED_DTYPE" && /x\.safetensors: tensor 'w'/.test(e.message),
    );
  });

  it("views unaligned bytes by copying, aligned bytes without", () => {
    const buf = new Uint8Array(9);
    new Float32Array(buf.buffer, 4, 1)[0] = 2.5;
    const aligned = viewStorage("F32", buf.subarray(4, 8));
    assert.equal(aligned[0], 2.5);
    assert.equal(aligned.buffer, buf.buffer);
    buf.copyWithin(1, 4, 8);
    const unaligned = viewStorage("F32", buf.subarray(1, 5));
    assert.equal(unaligned[0], 2.5);
    assert.notEqual(unaligned.buffer, buf.buffer);
  });
});

describe("float conversions", () => {
  for (const dtype of ["F32", "F64", "F16", "BF16"] as const) {
    it(`${dtype}: edge values survive float32 -> ${dtype} -> float32 (NaN, ±Inf, ±0 kept)`, () => {
      const back = toFloat32(fromFloat32(EDGE, dtype, [EDGE.length]));
      for (let i = 0; i < EDGE.length; i++) {
        const x = EDGE[i]!;
        const y = back[i]!;
        if (Number.isNaN(x)) assert.ok(Number.isNaN(y), `${dtype} NaN`);
        else if (!Number.isFinite(x)) assert.equal(y, x);
        else if (x === 0) assert.ok(Object.is(y, x), `${dtype} signed zero ${x}`);
        else if (dtype === "F32" || dtype === "F64") assert.equal(y, x);
      }
    });
  }

  it("F16 saturates past 65504 to infinity and keeps subnormals", () => {
    const back = toFloat32(fromFloat32(new Float32Array([65504, 70000, 2 ** -24, 2 ** -26]), "F16", [4]));
    assert.deepEqual([...back], [65504, Number.POSITIVE_INFINITY, 2 ** -24, 0]);
  });

  it("bulk BF16 encode equals the scalar codec on random values", () => {
    const src = new Float32Array(10_000);
    for (let i = 0; i < src.length; i++) src[i] = (Math.sin(i * 12.9898) * 43758.5453) % 10;
    const bits = encodeFromF32(src, "BF16", allocStorage("BF16", src.length));
    const dec = decodeToF32("BF16", bits, new Float32Array(src.length));
    for (let i = 0; i < src.length; i++) {
      assert.ok(Math.abs(dec[i]! - src[i]!) <= Math.abs(src[i]!) * 2 ** -8, `relative error of bf16 at ${i}`);
    }
  });

  it("decodes F8 tensors through their tables", () => {
    const e4 = makeTensor("F8_E4M3", [3], new Uint8Array([0x38, 0x7e, 0x7f]));
    const v = toFloat32(e4);
    assert.equal(v[0], 1);
    assert.equal(v[1], 448);
    assert.ok(Number.isNaN(v[2]!));
    const e5 = toFloat32(makeTensor("F8_E5M2", [2], new Uint8Array([0x3c, 0x7c])));
    assert.deepEqual([...e5], [1, Number.POSITIVE_INFINITY]);
  });

  it("refuses to encode into read-only F8 formats", () => {
    assert.throws(() => fromFloat32(new Float32Array(1), "F8_E4M3", [1]), FusionError);
  });

  it("F16 decode of a tensor equals the scalar table", () => {
    const bits = new Uint16Array([0x3c00, 0x0001, 0xfbff, 0x7e00]);
    const v = toFloat32(makeTensor("F16", [4], bits));
    for (let i = 0; i < 3; i++) assert.equal(v[i], f16BitsToF32(bits[i]!));
    assert.ok(Number.isNaN(v[3]!));
  });
});

describe("integer conversions", () => {
  const ranges = {
    I8: [-128, 127],
    U8: [0, 255],
    I16: [-32768, 32767],
    U16: [0, 65535],
    I32: [-(2 ** 24), 2 ** 24],
    U32: [0, 2 ** 24],
    I64: [-(2 ** 24), 2 ** 24],
    U64: [0, 2 ** 24],
  } as const;
  for (const [dtype, [lo, hi]] of Object.entries(ranges) as Array<[keyof typeof ranges, readonly [number, number]]>) {
    it(`${dtype}: integers within float32's exact range round-trip exactly`, () => {
      const values = new Float32Array([lo, hi, 0, 1, lo + 1, hi - 1, Math.floor((lo + hi) / 2)]);
      const t = fromFloat32(values, dtype, [values.length]);
      assert.deepEqual([...toFloat32(t)], [...values]);
    });
  }

  it("float -> int truncates toward zero, saturates, and maps NaN to 0 (as torch's .to(int) on CPU)", () => {
    const t = fromFloat32(new Float32Array([1.9, -1.9, 300, -300, Number.NaN, Number.POSITIVE_INFINITY]), "I8", [6]);
    assert.deepEqual([...t.data], [1, -1, 127, -128, 0, 127]);
  });

  it("I64 keeps large values as bigint and converts them to the nearest float32", () => {
    const t = makeTensor("I64", [2], new BigInt64Array([9007199254740993n, -5n]));
    assert.deepEqual([...toFloat32(t)], [Math.fround(Number(9007199254740993n)), -5]);
  });

  it("BOOL maps nonzero to 1", () => {
    assert.deepEqual([...fromFloat32(new Float32Array([0, 2, -0.5, Number.NaN]), "BOOL", [4]).data], [0, 1, 1, 1]);
    assert.deepEqual([...toFloat32(makeTensor("BOOL", [2], new Uint8Array([0, 7])))], [0, 1]);
  });

  it("castTensor converts between dtypes and is the identity for equal ones", () => {
    const t = fromFloat32(new Float32Array([1.5, -2]), "F32", [2]);
    assert.equal(castTensor(t, "F32"), t);
    assert.deepEqual([...castTensor(t, "I32").data], [1, -2]);
    assert.deepEqual([...toFloat32(castTensor(t, "BF16"))], [1.5, -2]);
  });

  it("makeTensor checks the element count against the shape", () => {
    assert.throws(
      () => makeTensor("F32", [2, 3], new Float32Array(5)),
      (e: unknown) => e instanceof FusionError && e.code === "SHAPE_MISMATCH",
    );
  });
});
