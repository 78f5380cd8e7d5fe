import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { blas, GEMM_LIBRARIES, loadGemm, NO_TRANS, type Sgemm, TRANS } from "../../src/nn/blas.js";

/** A seeded uniform(-1, 1) array (xorshift), so failures reproduce. */
function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s >>> 0) / 2 ** 31 - 1;
  }
  return out;
}

/** Row-major C = alpha op(A) op(B) + beta C in float64, the reference. */
function naive(
  ta: boolean,
  tb: boolean,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: Float32Array,
  lda: number,
  b: Float32Array,
  ldb: number,
  beta: number,
  c: Float32Array,
  ldc: number,
): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++)
        s += (ta ? a[p * lda + i]! : a[i * lda + p]!) * (tb ? b[j * ldb + p]! : b[p * ldb + j]!);
      out[i * n + j] = alpha * s + (beta === 0 ? 0 : beta * c[i * ldc + j]!);
    }
  }
  return out;
}

function available(): { name: string; sgemm: Sgemm }[] {
  const out: { name: string; sgemm: Sgemm }[] = [];
  for (const name of GEMM_LIBRARIES) {
    try {
      out.push({ name, sgemm: loadGemm(name) });
    } catch {
      // not installed here: the tests below name what they ran on
    }
  }
  return out;
}

describe("native sgemm (every library that loads)", () => {
  const libs = available();
  it("blas() picks a library that loads, or none when none does", () => {
    const b = blas();
    if (libs.length === 0) assert.equal(b, null);
    else assert.ok(b !== null && libs.some((l) => l.name === b.library), `blas() chose ${b?.library}`);
  });
  for (const { name, sgemm } of libs) {
    it(`${name}: every transpose pair, padded leading dimensions, offsets, alpha and beta agree with float64`, () => {
      let seed = 7;
      for (const [m, n, k] of [
        [1, 1, 1],
        [3, 5, 4],
        [17, 9, 33],
        [64, 40, 130],
        [5, 70, 1],
        [4, 3, 0], // k = 0: C = beta C
      ] as const) {
        for (const ta of [false, true]) {
          for (const tb of [false, true]) {
            for (const [alpha, beta] of [
              [1, 0],
              [0.5, 1],
              [-2, 0.25],
            ] as const) {
              const lda = (ta ? m : k) + 3;
              const ldb = (tb ? k : n) + 1;
              const ldc = n + 2;
              const off = 5; // views that start inside their buffers
              const a = rand(off + (ta ? k : m) * lda, seed++).subarray(off);
              const b = rand(off + (tb ? n : k) * ldb, seed++).subarray(off);
              const c = rand(off + m * ldc, seed++).subarray(off);
              const want = naive(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
              const padding = Array.from({ length: m }, (_, i) => c.slice(i * ldc + n, (i + 1) * ldc));
              sgemm(ta ? TRANS : NO_TRANS, tb ? TRANS : NO_TRANS, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
              for (let i = 0; i < m; i++) {
                for (let j = 0; j < n; j++) {
                  const got = c[i * ldc + j]!;
                  const w = want[i * n + j]!;
                  assert.ok(
                    Math.abs(got - w) <= 1e-5 * (k + 1) * (1 + Math.abs(w)),
                    `${m}x${n}x${k} ${ta}/${tb} [${i},${j}]: ${got} vs ${w}`,
                  );
                }
                // columns past n (inside the leading dimension) are left alone
                assert.deepEqual(c.slice(i * ldc + n, (i + 1) * ldc), padding[i]);
              }
            }
          }
        }
      }
    });
  }
  const dnnl = libs.find((l) => l.name === "onednn");
  it("the oneDNN addon rejects bad calls with a RangeError instead of touching memory", (t) => {
    if (dnnl === undefined) return t.skip("oneDNN addon not built here (apt-get install libdnnl-dev)");
    const f = dnnl.sgemm as unknown as (...args: unknown[]) => void;
    const a = new Float32Array(16);
    const ok = (over: Record<number, unknown>) => {
      const args: unknown[] = [
        NO_TRANS,
        NO_TRANS,
        4,
        4,
        4,
        1,
        a,
        4,
        new Float32Array(16),
        4,
        0,
        new Float32Array(16),
        4,
      ];
      for (const [i, v] of Object.entries(over)) args[Number(i)] = v;
      return () => f(...args);
    };
    ok({})(); // the base call is valid
    assert.throws(ok({ 6: new Float32Array(15) }), { name: "RangeError", message: /A too short/ });
    assert.throws(ok({ 8: new Float32Array(15) }), { name: "RangeError", message: /B too short/ });
    assert.throws(ok({ 11: new Float32Array(15) }), { name: "RangeError", message: /C too short/ });
    assert.throws(ok({ 12: 3 }), { name: "RangeError", message: /C too short/ }); // ldc < n
    assert.throws(ok({ 0: 7 }), { name: "RangeError", message: /transpose codes/ });
    assert.throws(ok({ 2: -1 }), { name: "RangeError", message: /negative/ });
    assert.throws(ok({ 6: new Float64Array(16) }), { name: "RangeError", message: /expected/ });
    assert.throws(() => f(NO_TRANS), { name: "RangeError", message: /13 arguments/ });
    // transposed A: 4 x 4 stored K x M, so a 3-row buffer of lda 4 is too short for k = 4
    assert.throws(ok({ 0: TRANS, 6: new Float32Array(12) }), { name: "RangeError", message: /A too short/ });
  });
});
