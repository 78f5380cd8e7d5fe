import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  bf16BitsToF32,
  f8E4M3Table,
  f8E5M2Table,
  f16BitsToF32,
  f16Table32,
  f32ToBf16Bits,
  f32ToF16Bits,
} from "../../src/tensor/float16.js";

/** Reference rounding to a finite set of sorted non-negative values: nearest, ties to the even bit pattern. */
function nearestF16Reference(x: number, positives: Float64Array): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00; // halfway between 65504 and 2^16 rounds to even: Inf
  let lo = 0;
  let hi = 0x7bff;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (positives[mid]! <= a) lo = mid;
    else hi = mid;
  }
  if (positives[hi]! <= a) lo = hi;
  const up = Math.min(lo + 1, 0x7c00);
  const dLo = a - positives[lo]!;
  const dUp = (up === 0x7c00 ? 65536 : positives[up]!) - a;
  const pick = dLo < dUp ? lo : dUp < dLo ? up : (lo & 1) === 0 ? lo : up;
  return sign | pick;
}

describe("binary16", () => {
  it("decodes every bit pattern and re-encodes it to the same bits (NaN stays NaN)", () => {
    for (let h = 0; h < 65536; h++) {
      const v = f16BitsToF32(h);
      const back = f32ToF16Bits(v);
      if (Number.isNaN(v)) {
        assert.ok(Number.isNaN(f16BitsToF32(back)), `NaN ${h.toString(16)}`);
        assert.equal(back & 0x8000, h & 0x8000, "NaN sign kept");
      } else assert.equal(back, h, `bits ${h.toString(16)} -> ${v} -> ${back.toString(16)}`);
    }
  });

  it("decodes the edge values exactly", () => {
    assert.equal(f16BitsToF32(0x3c00), 1);
    assert.equal(f16BitsToF32(0x7bff), 65504);
    assert.equal(f16BitsToF32(0x0001), 2 ** -24);
    assert.equal(f16BitsToF32(0x03ff), 1023 * 2 ** -24);
    assert.equal(f16BitsToF32(0x0400), 2 ** -14);
    assert.ok(Object.is(f16BitsToF32(0x8000), -0));
    assert.equal(f16BitsToF32(0x7c00), Number.POSITIVE_INFINITY);
    assert.equal(f16BitsToF32(0xfc00), Number.NEGATIVE_INFINITY);
    assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
  });

  it("rounds to nearest even at the edges", () => {
    assert.equal(f32ToF16Bits(65519.99), 0x7bff);
    assert.equal(f32ToF16Bits(65520), 0x7c00);
    assert.equal(f32ToF16Bits(1e10), 0x7c00);
    assert.equal(f32ToF16Bits(-1e10), 0xfc00);
    assert.equal(f32ToF16Bits(2 ** -25), 0, "half the smallest subnormal ties to even zero");
    assert.equal(f32ToF16Bits(2 ** -25 * 1.0001), 1);
    assert.equal(f32ToF16Bits(3 * 2 ** -25), 2, "1.5 ulp ties to even 2");
    assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00, "halfway above 1 ties down to even");
    assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02, "halfway ties up to even");
    assert.equal(f32ToF16Bits(2 ** -14 - 2 ** -25), 0x0400, "largest subnormal rounds up into the normals");
    assert.equal(f32ToF16Bits(-0), 0x8000);
    assert.equal(f32ToF16Bits(Number.NaN) & 0x7c00, 0x7c00);
    assert.ok((f32ToF16Bits(Number.NaN) & 0x3ff) !== 0, "NaN stays NaN");
  });

  it("matches a brute-force nearest-even reference on 200,000 random float32 values", () => {
    const table = f16Table32();
    const positives = new Float64Array(0x7c00);
    for (let h = 0; h < 0x7c00; h++) positives[h] = table[h]!;
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    let s = 12345;
    for (let i = 0; i < 200_000; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      // Exponents concentrated around the binary16 range, every mantissa.
      u[0] = (s & 0x807fffff) | ((((s >>> 23) % 48) + 96) << 23);
      const x = f[0]!;
      assert.equal(f32ToF16Bits(x), nearestF16Reference(x, positives), `x=${x}`);
    }
  });
});

describe("bfloat16", () => {
  it("round-trips every bit pattern (NaN stays NaN with its sign)", () => {
    for (let b = 0; b < 65536; b++) {
      const v = bf16BitsToF32(b);
      const back = f32ToBf16Bits(v);
      if (Number.isNaN(v)) {
        assert.ok(Number.isNaN(bf16BitsToF32(back)));
        assert.equal(back & 0x8000, b & 0x8000);
      } else assert.equal(back, b);
    }
  });

  it("rounds to nearest even, overflows to infinity, keeps subnormals and signed zero", () => {
    assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80, "tie goes to even (down)");
    assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82, "tie goes to even (up)");
    assert.equal(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -20), 0x3f81, "above the tie rounds up");
    assert.equal(f32ToBf16Bits(3.4028234663852886e38), 0x7f80, "max float32 rounds to Inf");
    assert.equal(f32ToBf16Bits(-3.4028234663852886e38), 0xff80);
    assert.equal(f32ToBf16Bits(2 ** -133), 0x0001, "smallest bf16 subnormal");
    assert.equal(bf16BitsToF32(0x0001), 2 ** -133);
    assert.equal(f32ToBf16Bits(-0), 0x8000);
    assert.equal(f32ToBf16Bits(Number.POSITIVE_INFINITY), 0x7f80);
    assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(Number.NaN))));
    // A signalling NaN whose payload lives only in the low bits must not collapse to Inf.
    const f = new Float32Array(1);
    new Uint32Array(f.buffer)[0] = 0x7f800001;
    assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(f[0]!))));
  });
});

describe("float8", () => {
  it("decodes E4M3FN: bias 7, max 448, no infinities, S.1111.111 is NaN", () => {
    const t = f8E4M3Table();
    assert.equal(t[0x38], 1);
    assert.equal(t[0x7e], 448);
    assert.equal(t[0xfe], -448);
    assert.equal(t[0x01], 2 ** -9);
    assert.equal(t[0x08], 2 ** -6);
    assert.ok(Object.is(t[0x80], -0));
    assert.ok(Number.isNaN(t[0x7f]!));
    assert.ok(Number.isNaN(t[0xff]!));
    assert.equal([...t].filter((v) => !Number.isFinite(v)).length, 2, "only the two NaNs are non-finite");
  });

  it("decodes E5M2: bias 15, max 57344, IEEE infinities and NaNs", () => {
    const t = f8E5M2Table();
    assert.equal(t[0x3c], 1);
    assert.equal(t[0x7b], 57344);
    assert.equal(t[0x01], 2 ** -16);
    assert.equal(t[0x7c], Number.POSITIVE_INFINITY);
    assert.equal(t[0xfc], Number.NEGATIVE_INFINITY);
    assert.ok(Number.isNaN(t[0x7d]!));
    assert.ok(Number.isNaN(t[0xff]!));
  });
});
