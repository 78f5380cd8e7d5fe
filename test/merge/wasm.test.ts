import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { getMethod } from "../../src/merge/registry.js";
import { SAMPLE_RUN, sampleStarts } from "../../src/merge/sample.js";
import type { ParamValues, StreamingMerge } from "../../src/merge/types.js";
import { decodeToF32, encodeFromF32 } from "../../src/tensor/convert.js";
import { bernoulliFill } from "../../src/tensor/kernels.js";
import { type KernelExports, type WasmArena, wasmArena, wasmFor } from "../../src/wasm/arena.js";

// The WebAssembly SIMD kernels must reproduce the pure-JS path bit for bit, special values included. JS runs on
// plain arrays, wasm on arrays in the arena (the kernels are chosen by where the arrays live). One exception:
// which NaN bit pattern an operation yields is unspecified in JavaScript (V8's tiers and register allocation
// decide which operand's payload survives, and whether a default NaN is positive), so NaN matches any NaN.

const root = fileURLToPath(new URL("../..", import.meta.url));

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return s / 2 ** 32;
  };
}

/** The wasm kernels, and the arena's own set too when native stand-ins replace some of them (src/wasm/native.ts). */
function kernelSets(a: WasmArena): [string, KernelExports][] {
  return a.k === a.wasm
    ? [["wasm", a.wasm]]
    : [
        ["wasm", a.wasm],
        ["native", a.k],
      ];
}

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);
function fromBits(u: number): number {
  U32[0] = u;
  return F32[0]!;
}

/** Values near 0.01 with quantised deltas (exact ties), and a sprinkle of +-0, +-inf, NaNs and subnormals. */
function specials(n: number, seed: number, base?: Float32Array, rate = 0.02): Float32Array {
  const r = rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = r();
    if (u < rate) {
      const pick = Math.floor(r() * 8);
      x[i] = [
        0,
        -0,
        Number.POSITIVE_INFINITY,
        Number.NEGATIVE_INFINITY,
        Number.NaN,
        fromBits(0xffc12345),
        fromBits(0x00000003 + Math.floor(r() * 1000)),
        fromBits(0x807fffff),
      ][pick]!;
    } else if (base !== undefined) x[i] = base[i]! + Math.round((r() - 0.5) * 64) / 4096;
    else x[i] = (r() - 0.5) * 0.05;
  }
  return x;
}

function bitsEqual(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, what);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < a.length; i++) {
    if (ua[i] !== ub[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i])))
      assert.fail(`${what}: element ${i}: ${a[i]} (0x${ua[i]!.toString(16)}) vs ${b[i]} (0x${ub[i]!.toString(16)})`);
  }
}

/** Copies of `arrays` in the arena (allocated first, views taken after: growing detaches older views). */
function inArena(a: WasmArena, arrays: readonly Float32Array[]): Float32Array[] {
  const ptrs = arrays.map((x) => a.alloc(x.length * 4));
  return arrays.map((x, i) => {
    const v = a.f32(ptrs[i]!, x.length);
    v.set(x);
    return v;
  });
}

const arena = wasmArena();

describe("wasm kernels", { skip: arena === null ? "WebAssembly SIMD unavailable or disabled" : false }, () => {
  const a = arena!;

  it("the committed module is what wasm/kernels.ts compiles to", () => {
    const r = spawnSync(process.execPath, ["wasm/build.mjs", "--check"], { cwd: root, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr + r.stdout);
  });

  it("bf16 and f16 decode, bf16 encode and rounding match the JS codecs on every bit pattern", () => {
    const mark = a.mark();
    const n = 65536 + 7;
    const src = a.alloc(n * 2);
    const dst = a.alloc(n * 4);
    const enc = a.alloc(n * 2);
    const bits = a.u8(src, n * 2);
    const u16 = new Uint16Array(bits.buffer, bits.byteOffset, n);
    for (let i = 0; i < n; i++) u16[i] = i & 0xffff;
    for (const dtype of ["BF16", "F16"] as const) {
      if (dtype === "BF16") a.k.decode_bf16(src, dst, n);
      else a.k.decode_f16(src, dst, n, a.f16Table);
      const want = decodeToF32(dtype, new Uint16Array(u16), new Float32Array(n));
      bitsEqual(a.f32(dst, n), want, `${dtype} decode`);
    }
    // Encode and round every float32 class: random bit patterns cover normals, subnormals, inf and NaN payloads.
    const r = rng(7);
    const vals = a.f32(dst, n);
    const vb = new Uint32Array(vals.buffer, vals.byteOffset, n);
    for (let i = 0; i < n; i++) vb[i] = Math.floor(r() * 2 ** 32) >>> 0;
    vb[0] = 0x80000000;
    vb[1] = 0x7f7fffff; // rounds up to inf
    vb[2] = 0x3f808000; // exact tie, even
    vb[3] = 0x3f818000; // exact tie, odd
    const plain = new Float32Array(vals);
    a.k.encode_bf16(dst, enc, n);
    const want = encodeFromF32(plain, "BF16", new Uint16Array(n));
    assert.deepEqual(new Uint16Array(a.u8(enc, n * 2).buffer, enc, n), want);
    a.k.round_bf16(dst, n);
    bitsEqual(a.f32(dst, n), decodeToF32("BF16", want, new Float32Array(n)), "bf16 rounding");
    a.release(mark);
  });

  it("Bernoulli draws (DARE masks) equal bernoulliFill at any offset, fine-stream ties included", () => {
    const key = { k0: 0x2468ace1, k1: 0x13579bdf };
    const n = 4099;
    const mark = a.mark();
    const mask = a.alloc(n);
    // Thresholds with and without low 24 bits (0.5 needs no fine stream; 0.002 is mostly ties of the top byte).
    for (const p of [0.5, 0.3, 0.53, 0.002, 1 - 1e-9]) {
      const threshold = Math.ceil(p * 2 ** 32);
      for (const offset of [0, 1, 2, 3, 17, 2 ** 32 - n, 2 ** 32 + 6]) {
        const hi = Math.floor(offset / 2 ** 32);
        const k1 = (key.k1 + Math.imul(hi, 0x9e3779b9)) >>> 0;
        for (const len of [n, 31, 5]) {
          const at = offset === 2 ** 32 - n ? offset + n - len : offset; // stay inside the 2^32 block
          a.k.bernoulli(key.k0, k1, at >>> 0, threshold, mask, len);
          const want = bernoulliFill(key, p, new Uint8Array(len), at);
          assert.deepEqual(new Uint8Array(a.u8(mask, len)), want, `p ${p}, offset ${at}, ${len} draws`);
        }
      }
    }
    a.release(mark);
  });

  it("linear and the task-arithmetic family merge identically on arena arrays", () => {
    const n = 4099;
    const cases: [string, number, ParamValues, ParamValues[] | undefined][] = [];
    for (const k of [1, 2, 3, 4, 5]) {
      const w = Array.from({ length: k }, (_, i) => ({ weight: [0.4, -0.3, 0.7, 0.25, 1.5][i]! }));
      cases.push(["linear", k, {}, w], ["linear", k, { normalize: false }, w]);
      cases.push(["task_arithmetic", k, { lambda: 0.7 }, w], ["task_arithmetic", k, { normalize: true }, w]);
      const d = w.map((x) => ({ ...x, density: 0.5 }));
      cases.push(["ties", k, {}, d], ["ties", k, { lambda: 1.3, normalize: false }, d], ["dare_ties", k, {}, d]);
      cases.push(["dare_linear", k, {}, d], ["ties", k, {}, w]); // ties with density 1: every model dense
    }
    for (const [method, k, params, modelParams] of cases) {
      for (const rate of [0, 0.02]) {
        const base = specials(n, 11 + k, undefined, rate);
        const models = Array.from({ length: k }, (_, i) => specials(n, 100 * k + i, base, rate));
        const m = getMethod(method);
        const hasBase = m.base === "required";
        const input = { tensorName: "t", params, modelParams, seed: 5 };
        const js = m.merge({
          ...input,
          models: models.map((data) => ({ data, shape: [n] })),
          base: hasBase ? { data: base, shape: [n] } : undefined,
        });
        const mark = a.mark();
        const outPtr = a.alloc(n * 4);
        const arr = inArena(a, [base, ...models]);
        const out = a.f32(outPtr, n);
        assert.ok(wasmFor(out, ...arr) !== null, "the arena arrays must take the wasm path");
        const wasm = m.merge({
          ...input,
          models: arr.slice(1).map((data) => ({ data, shape: [n] })),
          base: hasBase ? { data: arr[0]!, shape: [n] } : undefined,
          out,
        });
        bitsEqual(wasm.data, js.data, `${method} k=${k} ${JSON.stringify(params)} specials=${rate}`);
        a.release(mark);
      }
    }
  });

  it("the fused bf16 forms (wasmBf16) equal merge + bf16 encoding of the decoded inputs", () => {
    const n = 4103; // not a multiple of 8: the scalar tail too
    const toBf16 = (x: Float32Array) => encodeFromF32(x, "BF16", new Uint16Array(x.length));
    const cases: [string, number, ParamValues, ParamValues[]][] = [];
    for (const k of [1, 2, 3, 5]) {
      const w = Array.from({ length: k }, (_, i) => ({ weight: [0.4, -0.3, 0.7, 0.25, 1.5][i]! }));
      cases.push(["linear", k, {}, w], ["linear", k, { normalize: false }, w]);
    }
    const w3 = [{ weight: 0.5 }, { weight: -0.3 }, { weight: 0.9 }];
    cases.push(["task_arithmetic", 3, {}, w3], ["task_arithmetic", 3, { lambda: 0.7, normalize: true }, w3]);
    cases.push(["dare_linear", 3, {}, w3.map((x) => ({ ...x, density: 1 }))]); // every density 1: dense
    let fused = 0;
    for (const [method, k, params, modelParams] of cases) {
      for (const rate of [0, 0.05]) {
        const m = getMethod(method);
        const hasBase = m.base === "required";
        const bits = Array.from({ length: k + +hasBase }, (_, i) => toBf16(specials(n, 300 * k + i, undefined, rate)));
        const input = { tensorName: "t", params, modelParams };
        const kernel = m.wasmBf16?.({ ...input, models: k });
        assert.ok(kernel !== undefined, `${method} has a fused bf16 form`);
        fused++;
        const decoded = bits.map((b) => ({ data: decodeToF32("BF16", b, new Float32Array(n)), shape: [n] }));
        const js = m.merge({ ...input, models: decoded.slice(0, k), base: hasBase ? decoded[k] : undefined, seed: 1 });
        const want = toBf16(js.data);
        const mark = a.mark();
        const ptrs = bits.map((b) => {
          const p = a.alloc(n * 2);
          a.u16(p, n).set(b);
          return p;
        });
        const out = a.alloc(n * 2);
        kernel(a, ptrs, out, n);
        const got = a.u16(out, n);
        for (let i = 0; i < n; i++) {
          // NaN payloads are unspecified in JavaScript (see above): any NaN matches any NaN
          const nan = (b: number) => (b & 0x7fff) > 0x7f80;
          if (got[i] !== want[i] && !(nan(got[i]!) && nan(want[i]!)))
            assert.fail(
              `${method} bf16 k=${k} ${JSON.stringify(params)} rate=${rate}: element ${i} ${got[i]} vs ${want[i]}`,
            );
        }
        a.release(mark);
      }
    }
    assert.equal(fused, 2 * cases.length);
    // No fused form where the merge is not a plain sum of three dense task vectors.
    assert.equal(getMethod("ties").wasmBf16?.({ tensorName: "t", models: 3 }), undefined);
    assert.equal(getMethod("task_arithmetic").wasmBf16?.({ tensorName: "t", models: 2 }), undefined);
    const sparse = w3.map((x) => ({ ...x, density: 0.5 }));
    assert.equal(getMethod("dare_linear").wasmBf16?.({ tensorName: "t", models: 3, modelParams: sparse }), undefined);
    // Invalid weights fail as merge does, naming the tensor and key.
    assert.throws(
      () =>
        getMethod("linear").wasmBf16?.({ tensorName: "t.w", models: 2, modelParams: [{ weight: 1 }, { weight: -1 }] }),
      (e: Error & { tensor?: string; key?: string }) => e.tensor === "t.w" && e.key === "weight",
    );
  });

  it("the three-model band pass (delta_band3) gathers and counts exactly what three delta_band calls do", () => {
    const toBf16 = (x: Float32Array) => encodeFromF32(x, "BF16", new Uint16Array(x.length));
    for (const [n, bf16] of [
      [4099, false],
      [4099, true],
      [37, true],
    ] as const) {
      const base = specials(n, 7, undefined, 0.02);
      const models = [1, 2, 3].map((i) => specials(n, 70 + i, base, 0.02));
      const mark = a.mark();
      const put = (x: Float32Array) => {
        if (!bf16) return inArena(a, [x])[0]!.byteOffset;
        const p = a.alloc(n * 2);
        a.u16(p, n).set(toBf16(x));
        return p;
      };
      const [bp, ...xp] = [base, ...models].map(put) as [number, ...number[]];
      // bands of different widths (one tiny: most keys outside; one whose buffer overflows)
      const bands = [
        [0x3a000000, 0x3c000000, n],
        [0x3b800000, 0x3b810000, n],
        [0, 0x7f800000, 64],
      ] as const;
      const run = (fused: boolean, k = a.wasm) => {
        const out = bands.map(([, , cap]) => ({ keys: a.alloc((cap + 4) * 4), counts: a.alloc(8) }));
        for (const o of out) a.u32(o.counts, 2).fill(0);
        const recs = a.alloc(96);
        if (fused) {
          const u = a.u32(recs, 24);
          bands.forEach(([lo, hi, cap], i) => {
            u.set([lo, hi, out[i]!.keys, cap, out[i]!.counts], 8 * i);
          });
          if (bf16) k.delta_band3_bf16(xp[0]!, xp[1]!, xp[2]!, bp, n, recs, a.packTable);
          else k.delta_band3(xp[0]!, xp[1]!, xp[2]!, bp, n, recs, a.packTable);
        } else {
          bands.forEach(([lo, hi, cap], i) => {
            const f = bf16 ? a.wasm.delta_band_bf16 : a.wasm.delta_band;
            f(xp[i]!, bp, n, lo, hi, out[i]!.keys, cap, out[i]!.counts, a.packTable);
          });
        }
        return out.map((o, i) => {
          const counts = [...a.u32(o.counts, 2)];
          return { counts, keys: [...a.u32(o.keys, Math.min(counts[1]!, bands[i]![2]))] };
        });
      };
      const want = run(false);
      if (n > 64) assert.ok(want[2]!.counts[1]! > 64, "the third band overflows its buffer");
      for (const [impl, k] of kernelSets(a)) assert.deepEqual(run(true, k), want, `${impl}: n=${n} bf16=${bf16}`);
      a.release(mark);
    }
  });

  it("the bf16-out top-k combine (eight a step) equals the float32 kernel, encoded, with ties kept in index order", () => {
    // |delta| takes three values (a third of the keys tie at each threshold): the ties still to keep cross every
    // count below eight inside the eight-element steps, at lengths that leave four-element and scalar tails, and
    // with specials (NaN, infinities, -0) mixed in; normalize and lambda on and off, one weight negative
    const toBf16 = (x: Float32Array) => encodeFromF32(x, "BF16", new Uint16Array(x.length));
    const nan = (b: number) => (b & 0x7fff) > 0x7f80;
    for (const n of [8, 13, 35, 4096 + 7, 2053]) {
      const r = rng(n);
      // base in [0.5, 1) and deltas of 1-3 of its ulps (2^-8): exact, so a third of the keys tie at each value;
      // 2% specials
      const special = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 0];
      const base = new Float32Array(n).map(() => 0.5 + Math.floor(r() * 120) / 256);
      const models = [0, 1, 2].map(() =>
        base.map((b) =>
          r() < 0.02
            ? special[Math.floor(r() * special.length)]!
            : b + ((1 + Math.floor(r() * 3)) / 256) * (r() < 0.5 ? -1 : 1),
        ),
      );
      const bits = [base, ...models].map(toBf16);
      const vals = bits.map((v) => decodeToF32("BF16", v, new Float32Array(n)));
      // models 0 and 1 take their most common key as the threshold (many ties), model 2 keeps everything
      const common = [0, 1].map((m) => {
        const counts = new Map<number, number>();
        for (let i = 0; i < n; i++) {
          F32[0] = vals[m + 1]![i]! - vals[0]![i]!;
          const k = U32[0]! & 0x7fffffff;
          counts.set(k, (counts.get(k) ?? 0) + 1);
        }
        const [k, c] = [...counts].sort((x, y) => y[1] - x[1])[0]!;
        if (n > 100) assert.ok(c > n / 8, `n=${n}: model ${m} has ${c} ties at its threshold`);
        return k;
      });
      for (const [normalize, lambda, lefts] of [
        [1, 1, [0, 1, 3]],
        [0, 1.5, [5, 7, 1000000]],
        [1, 0.7, [2, 9, 4]],
      ] as const) {
        const mark = a.mark();
        const bp = bits.map((v) => {
          const p = a.alloc(n * 2);
          a.u16(p, n).set(v);
          return p;
        });
        const fp = vals.map((v) => inArena(a, [v])[0]!.byteOffset);
        const outF = a.alloc(n * 4);
        const outB = a.alloc(n * 2);
        const run = (xs: number[], b: number, bf16: boolean, out: number, k = a.wasm) => {
          const table = a.scratch;
          const u = a.u32(table, 12);
          const f = a.f32(table, 12);
          const sel = a.i32(table + 64, 6);
          for (let i = 0; i < 3; i++) {
            u[4 * i] = xs[i]!;
            u[4 * i + 1] = 0;
            f[4 * i + 2] = 1;
            f[4 * i + 3] = [0.5, -0.3, 0.9][i]!;
            sel[i] = [common[0]!, common[1]!, -1][i]!;
            sel[3 + i] = lefts[i]!;
          }
          (bf16 ? k.ta_consensus3_topk_bf16_out : k.ta_consensus3_topk)(
            b,
            table,
            table + 64,
            normalize,
            lambda,
            out,
            n,
          );
          return [...a.i32(table + 76, 3)];
        };
        const leftF = run(fp.slice(1), fp[0]!, false, outF);
        const want = encodeFromF32(a.f32(outF, n), "BF16", new Uint16Array(n));
        for (const [impl, k] of kernelSets(a)) {
          const leftB = run(bp.slice(1), bp[0]!, true, outB, k);
          const what = `${impl}: n=${n} normalize=${normalize} lambda=${lambda} lefts=${lefts}`;
          assert.deepEqual(leftB, leftF, `${what}: ties left`);
          const got = a.u16(outB, n);
          for (let i = 0; i < n; i++) {
            if (got[i] !== want[i] && !(nan(got[i]!) && nan(want[i]!)))
              assert.fail(`${what}: element ${i} ${got[i]} vs ${want[i]}`);
          }
        }
        a.release(mark);
      }
    }
  });

  it("streaming task arithmetic on the kernels equals the whole-tensor merge", () => {
    const n = 10007;
    const runs: [string, ParamValues, ParamValues[]][] = [
      [
        "ties",
        {},
        [
          { weight: 0.5, density: 0.5 },
          { weight: 0.3, density: 0.3 },
          { weight: 0.7, density: 0.9 },
        ],
      ],
      [
        "ties",
        { rescale: true },
        [
          { weight: 0.5, density: 0.5 },
          { weight: 0.3, density: 0.2 },
          { weight: 1, density: 1 },
        ],
      ],
      [
        "ties",
        {},
        [
          { weight: 0.5, density: 0.4 },
          { weight: -0.3, density: 0.6 },
        ],
      ],
      [
        "dare_ties",
        {},
        [
          { weight: 0.5, density: 0.5 },
          { weight: 0.3, density: 0.3 },
          { weight: 0.7, density: 0.9 },
        ],
      ],
      [
        "dare_ties",
        { rescale: false },
        [
          { weight: 0.5, density: 0.5 },
          { weight: 0.3, density: 0.3 },
          { weight: 0.7, density: 0.9 },
        ],
      ],
      [
        "dare_linear",
        {},
        [
          { weight: 0.5, density: 0.5 },
          { weight: 0.3, density: 0.3 },
          { weight: 0.7, density: 0.9 },
          { weight: 0.2, density: 0.6 },
        ],
      ],
      [
        "dare_ties",
        {},
        [
          { weight: 0.5, density: 0.5 },
          { weight: 0.3, density: 0.3 },
          { weight: 0.7, density: 0.9 },
          { weight: 0.2, density: 0.6 },
          { weight: 0.1, density: 0.7 },
        ],
      ],
    ];
    for (const [method, params, modelParams] of runs) {
      for (const rate of [0, 0.01]) {
        const k = modelParams.length;
        const base = specials(n, 3, undefined, rate);
        const models = Array.from({ length: k }, (_, i) => specials(n, 40 + i, base, rate));
        const m = getMethod(method);
        const whole = wholeMerge(m, params, modelParams, base, models);
        for (const [chunk, sampled] of [
          [1000, true],
          [1001, true],
          [4096, false],
          [n, true],
        ] as const) {
          const mark = a.mark();
          const stream = streamOf(m, n, k, params, modelParams, chunk);
          const outPtr = a.alloc(chunk * 4);
          if (sampled) giveSample(a, stream, base, models); // (allocates: before the views below)
          const arr = inArena(a, [base, ...models]);
          const got = runStream(stream, arr[0]!, arr.slice(1), chunk, () => a.f32(outPtr, chunk));
          const what = `${method} ${JSON.stringify(params)} k=${k} chunk=${chunk} sampled=${sampled} specials=${rate}`;
          bitsEqual(got, whole.data, what);
          // A representative sample settles every threshold in the band pass: no radix passes after it.
          if (sampled && method === "ties") assert.equal(stream.passes, params.rescale === true ? 2 : 1, what);
          a.release(mark);
        }
      }
    }
  });

  it("ties with deltas tied at the thresholds keep the first ties in index order", () => {
    // |delta| takes three values (a third of the entries tie at each threshold) or one (every entry ties, so whole
    // groups of four are kept until 1-3 ties are left): the combine's count of ties still to keep crosses every value
    // below four inside SIMD groups, at several chunk alignments
    const n = 10007;
    const r = rng(11);
    const base = new Float32Array(n).map(() => (r() - 0.5) * 0.1);
    const sign = () => (r() < 0.5 ? -1 : 1);
    const three = [0, 1, 2].map(() => base.map((b) => b + [0.25, 0.5, 0.75][Math.floor(r() * 3)]! * sign()));
    const one = [0, 1, 2].map(() => base.map((b) => b + 0.5 * sign()));
    const modelParams = [0.5, 0.3, 0.9].map((density) => ({ weight: 0.5, density }));
    const m = getMethod("ties");
    for (const models of [three, one]) {
      const whole = wholeMerge(m, {}, modelParams, base, models);
      for (const chunk of [1000, 1001, 4096, n]) {
        const mark = a.mark();
        const stream = streamOf(m, n, 3, {}, modelParams, chunk);
        const outPtr = a.alloc(chunk * 4);
        giveSample(a, stream, base, models);
        const arr = inArena(a, [base, ...models]);
        const got = runStream(stream, arr[0]!, arr.slice(1), chunk, () => a.f32(outPtr, chunk));
        bitsEqual(got, whole.data, `tied ties chunk=${chunk} magnitudes=${models === one ? 1 : 3}`);
        a.release(mark);
      }
    }
  });

  it("a sample that misleads the band search (threshold outside the band, or too many keys in it) costs passes, not bits", () => {
    const n = 20000;
    const r = rng(5);
    const base = new Float32Array(n).map(() => (r() - 0.5) * 0.1);
    // |delta| crowded into [0.499, 0.501] (and a few far ones), the threshold among them
    const models = [0, 1, 2].map((j) =>
      base.map((b, i) => b + (i % 97 === j ? 3 : 0.5 + (r() - 0.5) * 0.002) * (r() < 0.5 ? -1 : 1)),
    );
    const modelParams = [0.5, 0.3, 0.7].map((density) => ({ weight: 0.5, density }));
    const m = getMethod("ties");
    const whole = wholeMerge(m, {}, modelParams, base, models);
    const samples: [string, (x: number) => number][] = [
      ["zero deltas (band [0, 0])", () => 0],
      ["deltas spread over [0, 1] (band holds ~1% of the sample, most of the tensor)", (x) => x],
    ];
    for (const [what, delta] of samples) {
      const mark = a.mark();
      const stream = streamOf(m, n, 3, {}, modelParams, 4096);
      const outPtr = a.alloc(4096 * 4);
      const sampleModels = [0, 1, 2].map(() => new Float32Array(n).map(() => delta(r())));
      giveSample(a, stream, new Float32Array(n), sampleModels);
      const arr = inArena(a, [base, ...models]);
      assert.equal(stream.passes, 1, "one band pass planned after the sample");
      const got = runStream(stream, arr[0]!, arr.slice(1), 4096, () => a.f32(outPtr, 4096));
      assert.equal(stream.passes, 3, `${what}: the band missed, so the radix passes ran`);
      bitsEqual(got, whole.data, what);
      a.release(mark);
    }
  });

  it("a band of one key (a model equal to the base, mostly unchanged entries) settles from counts, gathering nothing", () => {
    const n = 40000;
    const r = rng(11);
    const base = new Float32Array(n).map(() => (r() - 0.5) * 0.1);
    // model 0 equal to the base (every key 0), model 1 changed in 1 entry of 10, model 2 in 1 of 3: at these
    // densities each threshold is the key 0, ties kept in index order
    const models = [0, 0.1, 1 / 3].map((changed) => base.map((b) => (r() < changed ? b + (r() - 0.5) * 0.01 : b)));
    const modelParams = [0.5, 0.3, 0.4].map((density) => ({ weight: 0.5, density }));
    for (const method of ["ties", "dare_ties"]) {
      const m = getMethod(method);
      const { took, passes } = sampledStream(a, m, modelParams, base, models, method);
      // no gathered keys (before: a buffer for the whole tensor per model, 4 bytes a key, 480 KB here)
      if (method === "ties") assert.ok(took <= 3 * 64, `${method}: the sample took ${took} bytes of arena`);
      if (method === "ties") assert.equal(passes, 1, "settled by the band pass: no radix passes");
    }
  });

  it("a band that holds more than an eighth of the tensor runs the radix passes instead of gathering it", () => {
    const n = 40000;
    const r = rng(12);
    const base = new Float32Array(n).map(() => (r() - 0.5) * 0.1);
    // |delta| near 0.25 or 0.75 (float32 rounding spreads each over a few keys), half and half: the threshold at the
    // median lies between the two, so the band spans both and holds nearly every key
    const models = [0, 1, 2].map(() => base.map((b) => b + (r() < 0.5 ? 0.25 : 0.75) * (r() < 0.5 ? -1 : 1)));
    const modelParams = [0.5, 0.5, 0.5].map((density) => ({ weight: 0.5, density }));
    const { took, passes } = sampledStream(a, getMethod("ties"), modelParams, base, models, "ties");
    // at most an eighth of the tensor per model, 4 bytes a key (plus the slack of 4096 keys and 4 more)
    assert.ok(took <= 3 * 4 * (n / 8 + 4100) + 3 * 64, `the sample took ${took} bytes of arena`);
    assert.equal(passes, 3, "the band overflowed its buffer, so the radix passes ran");
  });

  it("the dry-run's bound (streamingBytes) holds what a stream takes from the arena, the sample's buffers included", () => {
    const n = 50000;
    const r = rng(13);
    const base = new Float32Array(n).map(() => (r() - 0.5) * 0.1);
    const spread = [0, 1, 2].map(() => base.map((b) => b + (r() - 0.5) * 0.01));
    const wide = [0, 1, 2].map(() => base.map((b) => b + (r() < 0.5 ? 0.25 : 0.75) * (r() < 0.5 ? -1 : 1)));
    const cases: [string, ParamValues, Float32Array[]][] = [
      ["ties", {}, spread],
      ["ties", { rescale: true }, wide],
      ["dare_ties", {}, spread],
      ["dare_linear", { rescale: true }, spread],
    ];
    const modelParams = [0.5, 0.3, 0.9].map((density) => ({ weight: 0.5, density }));
    for (const [method, params, models] of cases) {
      const m = getMethod(method);
      const input = { tensorName: "t", numel: n, shape: [n], models: 3, hasBase: true, params, modelParams };
      const bound = m.streamingBytes!(input, 4096)!;
      const mark = a.mark();
      const stream = streamOf(m, n, 3, params, modelParams, 4096);
      giveSample(a, stream, base, models);
      const took = a.mark() - mark;
      assert.ok(took <= bound, `${method}: took ${took} bytes, bound ${bound}`);
      a.release(mark);
    }
  });

  it("streams that read raw bf16 chunks (no decoding) equal the whole-tensor merge of the decoded values", () => {
    const n = 10007;
    const runs: [string, ParamValues, ParamValues[]][] = [
      [
        "ties",
        {},
        [
          { weight: 0.5, density: 0.5 },
          { weight: 0.3, density: 0.3 },
          { weight: 0.7, density: 0.9 },
        ],
      ],
      [
        "ties",
        { rescale: true, lambda: 1.5 },
        [
          { weight: 0.5, density: 0.5 },
          { weight: -0.3, density: 0.2 },
          { weight: 1, density: 1 },
        ],
      ],
      ["task_arithmetic", { lambda: 0.8 }, [{ weight: 0.5 }, { weight: -0.3 }, { weight: 0.7 }]],
      ["task_arithmetic", { normalize: true }, [{ weight: 0.5 }, { weight: 0.3 }, { weight: 0.7 }]],
      [
        "dare_linear",
        { rescale: true },
        [
          { weight: 0.5, density: 0.5 },
          { weight: 0.3, density: 0.3 },
          { weight: 0.7, density: 0.9 },
        ],
      ],
      [
        "dare_ties",
        {},
        [
          { weight: 0.5, density: 0.5 },
          { weight: 0.3, density: 0.3 },
          { weight: 0.7, density: 0.9 },
        ],
      ],
    ];
    for (const [method, params, modelParams] of runs) {
      for (const rate of [0, 0.01]) {
        // bf16 inputs: round the special values through bf16, then merge the decoded values whole (the JS path).
        const toBf16 = (x: Float32Array) => encodeFromF32(x, "BF16", new Uint16Array(x.length));
        const baseBits = toBf16(specials(n, 3, undefined, rate));
        const base = decodeToF32("BF16", baseBits, new Float32Array(n));
        const modelBits = [0, 1, 2].map((i) => toBf16(specials(n, 40 + i, base, rate)));
        const models = modelBits.map((bits) => decodeToF32("BF16", bits, new Float32Array(n)));
        const m = getMethod(method);
        const whole = wholeMerge(m, params, modelParams, base, models);
        for (const chunk of [1000, 4096]) {
          const mark = a.mark();
          const stream = streamOf(m, n, 3, params, modelParams, chunk);
          assert.equal(stream.rawBf16, true);
          const outPtr = a.alloc(chunk * 4);
          const bitPtrs = [baseBits, ...modelBits].map(() => a.alloc(n * 2));
          const junk = [0, 1, 2, 3].map(() => a.alloc(chunk * 4)); // undecoded float32 views: never read
          const bits = bitPtrs.map((p, i) => {
            const v = a.u16(p, n);
            v.set([baseBits, ...modelBits][i]!);
            return v;
          });
          const at = (start: number) => {
            const len = Math.min(n, start + chunk) - start;
            const f = junk.map((p) => a.f32(p, len).fill(Number.NaN));
            const views = bits.map((v) => v.subarray(start, start + len));
            return { start, base: f[0]!, models: f.slice(1), bf16: { base: views[0]!, models: views.slice(1) } };
          };
          for (let p = 0; p < stream.passes; p++) {
            for (let start = 0; start < n; start += chunk) stream.observe(p, at(start));
            stream.endPass(p);
          }
          const what = `${method} bf16 ${JSON.stringify(params)} chunk=${chunk} specials=${rate}`;
          if (chunk === 4096) {
            // the output pass straight into bf16 bits (emitBf16) equals the float32 merge, encoded
            assert.ok(stream.emitBf16 !== undefined, `${method} emits bf16`);
            const outBits = a.alloc(chunk * 2);
            const got = new Uint16Array(n);
            for (let start = 0; start < n; start += chunk) {
              const c = at(start);
              assert.ok(stream.emitBf16(c, outBits));
              got.set(a.u16(outBits, c.base.length), start);
            }
            const want = encodeFromF32(whole.data, "BF16", new Uint16Array(n));
            const nan = (b: number) => (b & 0x7fff) > 0x7f80;
            for (let i = 0; i < n; i++) {
              if (got[i] !== want[i] && !(nan(got[i]!) && nan(want[i]!)))
                assert.fail(`${what}: element ${i} ${got[i]} vs ${want[i]}`);
            }
          } else {
            const got = new Float32Array(n);
            for (let start = 0; start < n; start += chunk) {
              const c = at(start);
              const o = a.f32(outPtr, c.base.length);
              stream.emit(c, o);
              got.set(o, start);
            }
            bitsEqual(got, whole.data, what);
          }
          a.release(mark);
        }
      }
    }
  });
});

function runStream(
  stream: StreamingMerge,
  base: Float32Array,
  models: Float32Array[],
  chunk: number,
  outBuf: () => Float32Array,
): Float32Array {
  const n = base.length;
  const at = (start: number) => {
    const end = Math.min(n, start + chunk);
    return { start, base: base.subarray(start, end), models: models.map((m) => m.subarray(start, end)) };
  };
  for (let p = 0; p < stream.passes; p++) {
    for (let start = 0; start < n; start += chunk) stream.observe(p, at(start));
    stream.endPass(p);
  }
  const out = new Float32Array(n);
  for (let start = 0; start < n; start += chunk) {
    const c = at(start);
    const o = outBuf().subarray(0, c.base.length);
    stream.emit(c, o);
    out.set(o, start);
  }
  return out;
}

/**
 * Hand the stream the sample it asks for (the runs at sampleStarts, as the engine reads them) from these arrays.
 * Allocates in the arena (so do it before taking views that must stay valid).
 */
/**
 * Stream three models over 4096-element chunks after their sample, checked bit for bit against the whole-tensor
 * merge; the arena bytes the stream took for the sample and the passes it ran.
 */
function sampledStream(
  a: WasmArena,
  m: ReturnType<typeof getMethod>,
  modelParams: ParamValues[],
  base: Float32Array,
  models: Float32Array[],
  what: string,
): { took: number; passes: number } {
  const n = base.length;
  const whole = wholeMerge(m, {}, modelParams, base, models);
  const mark = a.mark();
  const stream = streamOf(m, n, 3, {}, modelParams, 4096);
  const outPtr = a.alloc(4096 * 4);
  const took = giveSample(a, stream, base, models);
  const arr = inArena(a, [base, ...models]);
  const got = runStream(stream, arr[0]!, arr.slice(1), 4096, () => a.f32(outPtr, 4096));
  bitsEqual(got, whole.data, what);
  a.release(mark);
  return { took, passes: stream.passes };
}

/** Feed the stream its sample; the arena bytes the stream took for it (gathered-key buffers). */
function giveSample(a: WasmArena, stream: StreamingMerge, base: Float32Array, models: Float32Array[]): number {
  const wanted = stream.sampleSize ?? 0;
  if (wanted === 0 || stream.sample === undefined) return 0;
  const n = base.length;
  const starts = sampleStarts(n, wanted);
  const m = starts.length * SAMPLE_RUN;
  // per input a raw copy and its float32 values, as the engine's readSampleWasm allocates them for float32 sources
  a.alloc(m * 4 * (models.length + 1));
  const ptrs = [base, ...models].map(() => a.alloc(m * 4));
  const views = ptrs.map((p) => a.f32(p, m));
  [base, ...models].forEach((x, i) => {
    starts.forEach((start, j) => {
      views[i]!.set(x.subarray(start, start + SAMPLE_RUN), j * SAMPLE_RUN);
    });
  });
  const before = a.mark();
  stream.sample({ start: 0, base: views[0]!, models: views.slice(1) });
  return a.mark() - before;
}

/** The whole-tensor merge the streams must reproduce (seed 9). */
function wholeMerge(
  m: ReturnType<typeof getMethod>,
  params: ParamValues,
  modelParams: ParamValues[],
  base: Float32Array,
  models: Float32Array[],
) {
  const n = base.length;
  return m.merge({
    tensorName: "t",
    params,
    modelParams,
    seed: 9,
    models: models.map((data) => ({ data, shape: [n] })),
    base: { data: base, shape: [n] },
  });
}

/** The wasm stream for an n-element tensor of k models plus a base (seed 9), in chunks of `chunk`. */
function streamOf(
  m: ReturnType<typeof getMethod>,
  n: number,
  k: number,
  params: ParamValues,
  modelParams: ParamValues[],
  chunk: number,
): StreamingMerge {
  return m.streaming!({
    tensorName: "t",
    numel: n,
    shape: [n],
    models: k,
    hasBase: true,
    params,
    modelParams,
    seed: 9,
    wasmChunk: chunk,
  })!;
}
