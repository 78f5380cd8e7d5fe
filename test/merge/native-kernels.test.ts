import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { type WasmArena, wasmArena } from "../../src/wasm/arena.js";
import { type NativeKernels, nativeKernels } from "../../src/wasm/native.js";

// The native merge kernels (native/merge-kernels, AVX-512) stand in for five wasm kernels: the same tables, the
// same bits (NaN payloads aside). Random inputs here (lengths that leave every tail, thresholds taken from the data so ties occur, ties left
// crossing every count, specials); test/merge/wasm.test.ts runs both sets on its hand-built cases too.

const ADDON = fileURLToPath(
  new URL("../../native/merge-kernels/build/Release/fusionkit_merge_kernels.node", import.meta.url),
);
const built = existsSync(ADDON);

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return s / 2 ** 32;
  };
}

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);
const bf16Value = (h: number): number => {
  U32[0] = h << 16;
  return F32[0]!;
};
/** bits(|fround(x - b)|) of two bf16 values, as the kernels compute their keys. */
const keyOf = (x: number, b: number): number => {
  F32[0] = bf16Value(x) - bf16Value(b);
  return U32[0]! & 0x7fffffff;
};
const SPECIALS = [0x7fc0, 0xffc1, 0x7f80, 0xff80, 0x8000, 0x0000, 0x0001, 0x807f];

// Which NaN a sum of two NaNs keeps depends on the operands' order, which a C compiler may swap (addition
// commutes), so NaNs compare as one value here, as JS and wasm results do in wasm.test.ts; every other bit counts.
/** n bf16 results, every NaN as 0x7fc0. */
function nanBits16(a: WasmArena, p: number, n: number): number[] {
  return [...a.u16(p, n)].map((h) => ((h & 0x7fff) > 0x7f80 ? 0x7fc0 : h));
}

/** The 27 float64 sums at p as bit strings, every NaN as "NaN". */
function nanBits64(a: WasmArena, p: number): string[] {
  const v = a.f64(p, 27);
  const u = a.u32(p, 54);
  return [...v].map((x, j) => (Number.isNaN(x) ? "NaN" : `${u[2 * j + 1]}:${u[2 * j]}`));
}

/**
 * A base and three models of n raw bf16 values in the arena (pointers): base values near 1, each model's within
 * `spread` ulps of it (exact bf16 deltas, so keys tie), `equal` of them equal to the base, 3% specials.
 */
function bf16Inputs(a: WasmArena, r: () => number, n: number, spread: number, equal: number): number[] {
  const inputs = [0, 1, 2, 3].map(() => a.alloc(2 * n + 2));
  const base = a.u16(inputs[0]!, n);
  for (let i = 0; i < n; i++) base[i] = 0x3c00 + Math.floor(r() * 64);
  for (const p of inputs.slice(1)) {
    const x = a.u16(p, n);
    for (let i = 0; i < n; i++) {
      const u = r();
      x[i] =
        u < 0.03
          ? SPECIALS[Math.floor(r() * SPECIALS.length)]!
          : u < 0.03 + equal
            ? base[i]!
            : (base[i]! + Math.floor(r() * (2 * spread + 1)) - spread) & 0xffff;
    }
  }
  return inputs;
}

describe("native merge kernels", () => {
  it("load where they are built and the CPU has AVX-512", (t) => {
    if (!built) return t.skip("native/merge-kernels not built here (no C compiler at install)");
    const mod = createRequire(import.meta.url)(ADDON) as { supported: boolean };
    assert.equal(typeof mod.supported, "boolean");
    if (process.env.FUSIONKIT_NATIVE_KERNELS !== "0") assert.equal(nativeKernels() !== null, mod.supported);
    const a = wasmArena()!;
    assert.equal(a.k !== a.wasm, nativeKernels() !== null, "the arena swaps them in exactly when they load");
  });

  const native = nativeKernels();
  const skip = native === null ? "native merge kernels not in use here" : false;

  it("the top-k combine equals the wasm kernel bit for bit on random bf16 tensors", { skip }, () => {
    const nk = native as NativeKernels;
    const a = wasmArena()!;
    for (let trial = 0; trial < 60; trial++) {
      const r = rng(1000 + trial);
      const n = trial < 20 ? trial : 1 + Math.floor(r() * 5000);
      const mark = a.mark();
      // deltas of a few bf16 ulps (many ties), a share of equal entries (zero deltas) and of specials
      const inputs = bf16Inputs(a, r, n, 4, 0.17);
      const base = a.u16(inputs[0]!, n);
      const thr = [0, 1, 2].map((m) => {
        if (n === 0 || r() < 0.15) return -1;
        const i = Math.floor(r() * n);
        return keyOf(a.u16(inputs[m + 1]!, n)[i]!, base[i]!);
      });
      const left = [0, 1, 2].map(() => [0, 1, 2, 7, 15, 16, 17, 40, 1 << 30][Math.floor(r() * 9)]!);
      const w = [0, 1, 2].map(() =>
        r() < 0.1 ? [Number.POSITIVE_INFINITY, 0, -0.5][Math.floor(r() * 3)]! : 0.2 + r(),
      );
      const scale = [0, 1, 2].map(() => (r() < 0.5 ? 1 : 0.5 + r()));
      const normalize = r() < 0.7 ? 1 : 0;
      const lambda = r() < 0.6 ? 1 : 0.3 + r();
      const table = a.alloc(48);
      const sel = a.alloc(24);
      const outs = [a.alloc(2 * n + 2), a.alloc(2 * n + 2)];
      const results = outs.map((out, which) => {
        const u = a.u32(table, 12);
        const f = a.f32(table, 12);
        const s = a.i32(sel, 6);
        for (let m = 0; m < 3; m++) {
          u[4 * m] = inputs[m + 1]!;
          u[4 * m + 1] = 0;
          f[4 * m + 2] = scale[m]!;
          f[4 * m + 3] = w[m]!;
          s[m] = thr[m]!;
          s[3 + m] = left[m]!;
        }
        if (which === 0) a.wasm.ta_consensus3_topk_bf16_out(inputs[0]!, table, sel, normalize, lambda, out, n);
        else
          nk.ta_consensus3_topk_bf16_out(
            a.memory.buffer as ArrayBuffer,
            inputs[0]!,
            table,
            sel,
            normalize,
            lambda,
            out,
            n,
          );
        return { left: [...a.i32(sel + 12, 3)], out: nanBits16(a, out, n) };
      });
      assert.deepEqual(results[1], results[0], `trial ${trial}: n=${n} thr=${thr} left=${left} w=${w}`);
      a.release(mark);
    }
  });

  it("the band pass equals the wasm kernel: counts, and every key gathered below the cap", { skip }, () => {
    const nk = native as NativeKernels;
    const a = wasmArena()!;
    for (let trial = 0; trial < 40; trial++) {
      const r = rng(2000 + trial);
      const n = trial < 16 ? trial * 3 : 1 + Math.floor(r() * 6000);
      const mark = a.mark();
      const inputs = bf16Inputs(a, r, n, 20, 0);
      const base = a.u16(inputs[0]!, n);
      // a band around a key of the data, a wide one, one that holds nothing; caps from tiny (overflow) to ample
      const bands = [0, 1, 2].map((m) => {
        const i = n > 0 ? Math.floor(r() * n) : 0;
        const k = n > 0 ? keyOf(a.u16(inputs[m + 1]!, n)[i]!, base[i]!) : 0;
        const kind = Math.floor(r() * 3);
        const [lo, hi] = kind === 0 ? [Math.max(0, k - 5000), k + 20000] : kind === 1 ? [0, 0x7f800000] : [5, 4];
        const cap = [0, 3, 17, Math.floor(n / 4), n][Math.floor(r() * 5)]!;
        return { lo, hi, cap, start: Math.floor(r() * 3) };
      });
      const recs = a.alloc(96);
      const runs = [0, 1].map((which) => {
        const bufs = bands.map((b) => ({ keys: a.alloc((b.cap + 4) * 4), counts: a.alloc(8) }));
        const u = a.u32(recs, 24);
        bands.forEach((b, m) => {
          u.set([b.lo, b.hi, bufs[m]!.keys, b.cap, bufs[m]!.counts], 8 * m);
        });
        bufs.forEach((b, m) => {
          a.u32(b.counts, 2).set([0, Math.min(bands[m]!.start, bands[m]!.cap)]);
        });
        const [x0, x1, x2] = inputs.slice(1) as [number, number, number];
        if (which === 0) a.wasm.delta_band3_bf16(x0, x1, x2, inputs[0]!, n, recs, a.packTable);
        else nk.delta_band3_bf16(a.memory.buffer as ArrayBuffer, x0, x1, x2, inputs[0]!, n, recs);
        return bufs.map((b, m) => {
          const counts = [...a.u32(b.counts, 2)];
          const start = Math.min(bands[m]!.start, bands[m]!.cap);
          return { counts, keys: [...a.u32(b.keys + 4 * start, Math.min(counts[1]!, bands[m]!.cap) - start)] };
        });
      });
      assert.deepEqual(runs[1], runs[0], `trial ${trial}: n=${n} bands=${JSON.stringify(bands)}`);
      a.release(mark);
    }
  });

  it("the masked combine and the L1 sums equal the wasm kernels bit for bit on random bf16 tensors", { skip }, () => {
    const nk = native as NativeKernels;
    const a = wasmArena()!;
    const mem = () => a.memory.buffer as ArrayBuffer;
    for (let trial = 0; trial < 60; trial++) {
      const r = rng(3000 + trial);
      const n = trial < 20 ? trial : 1 + Math.floor(r() * 5000);
      const mark = a.mark();
      const inputs = bf16Inputs(a, r, n, 30, 0.1);
      // Bernoulli-like masks (bytes 0 / 1, as the mask kernels write them), one model sometimes unmasked (0)
      const masks = [0, 1, 2].map(() => {
        const p = a.alloc(n + 1);
        const keep = r();
        const m = a.u8(p, n);
        for (let i = 0; i < n; i++) m[i] = r() < keep ? 1 : 0;
        return p;
      });
      const w = [0, 1, 2].map(() =>
        r() < 0.1 ? [Number.POSITIVE_INFINITY, 0, -0.5][Math.floor(r() * 3)]! : 0.2 + r(),
      );
      const scale = [0, 1, 2].map(() => (r() < 0.3 ? 1 : 1 / (0.1 + r())));
      const normalize = r() < 0.7 ? 1 : 0;
      const lambda = r() < 0.6 ? 1 : 0.3 + r();
      const table = a.alloc(48);
      const u = a.u32(table, 12);
      const f = a.f32(table, 12);
      for (let m = 0; m < 3; m++) {
        u[4 * m] = inputs[m + 1]!;
        u[4 * m + 1] = m === 2 && r() < 0.3 ? 0 : masks[m]!;
        f[4 * m + 2] = scale[m]!;
        f[4 * m + 3] = w[m]!;
      }
      const outs = [a.alloc(2 * n + 2), a.alloc(2 * n + 2)];
      a.wasm.ta_consensus3_bf16_out(inputs[0]!, table, normalize, lambda, outs[0]!, n);
      nk.ta_consensus3_bf16_out(mem(), inputs[0]!, table, normalize, lambda, outs[1]!, n);
      const what = `trial ${trial}: n=${n} w=${w} scale=${scale} keep=${[...u].filter((_, j) => j % 4 === 1)}`;
      assert.deepEqual(nanBits16(a, outs[1]!, n), nanBits16(a, outs[0]!, n), `combine, ${what}`);
      // the sums start from earlier chunks' values (one of them NaN sometimes) and keep accumulating
      const accs = [a.alloc(216), a.alloc(216)];
      const start = [0, 1, 2].flatMap((m) => [
        ...[0, 1, 2, 3].map(() => (r() < 0.05 ? Number.NaN : r() * 100)),
        ...[0, 1, 2, 3].map(() => r() * 50),
        m === 1 && r() < 0.3 ? 1 : 0,
      ]);
      for (const acc of accs) a.f64(acc, 27).set(start);
      const [x0, x1, x2] = inputs.slice(1) as [number, number, number];
      const [m0, m1, m2] = masks as [number, number, number];
      for (let rep = 0; rep < 2; rep++) {
        a.wasm.l1_sums3_bf16(x0, m0, x1, m1, x2, m2, inputs[0]!, n, accs[0]!);
        nk.l1_sums3_bf16(mem(), x0, m0, x1, m1, x2, m2, inputs[0]!, n, accs[1]!);
      }
      assert.deepEqual(nanBits64(a, accs[1]!), nanBits64(a, accs[0]!), `L1 sums, ${what}`);
      a.release(mark);
    }
  });

  it("Bernoulli keep-masks equal the wasm kernel's at any counter, threshold and length", { skip }, () => {
    const nk = native as NativeKernels;
    const a = wasmArena()!;
    const r = rng(4000);
    const u32 = () => Math.floor(r() * 4294967296) >>> 0;
    for (let trial = 0; trial < 300; trial++) {
      // counters anywhere, up to the end of the 2^32 block (which calls never cross: drawMask splits there), at every
      // offset mod 4
      const lo = trial % 5 === 0 ? (4294967296 - Math.floor(1 + r() * 3000)) >>> 0 : u32();
      const n = Math.min(trial < 70 ? trial : Math.floor(r() * 3000), 4294967296 - lo);
      const kind = trial % 3;
      // thresholds with fine bits (a top-byte tie goes to the fine stream), without (no fine stream), tiny, huge
      const threshold =
        kind === 0
          ? Math.max(1, u32())
          : kind === 1
            ? (Math.max(1, u32() >>> 24) << 24) >>> 0
            : [1, 255, 0xffffffff][trial % 3]!;
      const k0 = u32();
      const k1 = u32();
      const mark = a.mark();
      const masks = [a.alloc(n + 1), a.alloc(n + 1)];
      a.wasm.bernoulli(k0, k1, lo, threshold, masks[0]!, n);
      nk.bernoulli(a.memory.buffer as ArrayBuffer, k0, k1, lo, threshold, masks[1]!, n);
      const want = [...a.u8(masks[0]!, n)];
      assert.deepEqual([...a.u8(masks[1]!, n)], want, `trial ${trial}: n=${n} lo=${lo} threshold=${threshold}`);
      if (n > 1000 && kind === 0) {
        const kept = want.reduce((x, y) => x + y, 0) / n;
        assert.ok(
          Math.abs(kept - threshold / 2 ** 32) < 0.06,
          `trial ${trial}: kept ${kept} for p=${threshold / 2 ** 32}`,
        );
      }
      a.release(mark);
    }
  });

  it("a call outside the memory, or with the wrong arguments, throws a RangeError and writes nothing", { skip }, () => {
    const nk = native as NativeKernels;
    const a = wasmArena()!;
    const table = a.alloc(48);
    const sel = a.alloc(24);
    const b = a.alloc(64);
    const out = a.alloc(64);
    const acc = a.alloc(216);
    const recs = a.alloc(96);
    const keys = a.alloc(64);
    const counts = a.alloc(8);
    const mem = a.memory.buffer as ArrayBuffer; // after the allocations (growing the memory detaches its buffer)
    const size = mem.byteLength;
    a.u32(table, 12).set([b, 0, 0, 0, b, 0, 0, 0, b, 0, 0, 0]);
    a.u16(out, 32).fill(0x1234);
    a.u16(b, 32).fill(0x3c00);
    const code = (f: () => void): string => {
      try {
        f();
      } catch (err) {
        assert.ok(err instanceof RangeError, String(err));
        return (err as RangeError & { code: string }).code;
      }
      return "no error";
    };
    assert.equal(
      code(() => nk.ta_consensus3_topk_bf16_out(mem, size - 16, table, sel, 1, 1, out, 32)),
      "ERR_SIZE",
    );
    assert.equal(
      code(() => nk.ta_consensus3_topk_bf16_out(mem, b, table, sel, 1, 1, size - 2, 32)),
      "ERR_SIZE",
    );
    assert.equal(
      code(() => nk.ta_consensus3_topk_bf16_out(mem, b + 1, table, sel, 1, 1, out, 8)),
      "ERR_SIZE",
    );
    a.u32(table, 12)[4] = size; // model 1 past the end
    assert.equal(
      code(() => nk.ta_consensus3_topk_bf16_out(mem, b, table, sel, 1, 1, out, 32)),
      "ERR_SIZE",
    );
    assert.deepEqual([...new Set(a.u16(out, 32))], [0x1234], "nothing written");
    assert.equal(
      code(() => nk.ta_consensus3_topk_bf16_out(mem, b, table, sel, 1, 1, out, -1)),
      "ERR_ARGS",
    );
    assert.equal(
      code(() =>
        (nk.ta_consensus3_topk_bf16_out as (...x: unknown[]) => void)(new Uint8Array(mem), b, table, sel, 1, 1, out, 1),
      ),
      "ERR_ARGS",
    );
    a.u32(recs, 24).set([
      0,
      1,
      keys,
      12,
      counts,
      0,
      0,
      0,
      0,
      1,
      keys,
      12,
      counts,
      0,
      0,
      0,
      0,
      1,
      keys,
      1 << 30,
      counts,
    ]);
    assert.equal(
      code(() => nk.delta_band3_bf16(mem, b, b, b, b, 32, recs)),
      "ERR_SIZE",
      "a cap past the end",
    );
    a.u32(recs, 24)[19] = 12;
    a.u32(recs, 24)[16] = 0x80000000;
    assert.equal(
      code(() => nk.delta_band3_bf16(mem, b, b, b, b, 32, recs)),
      "ERR_ARGS",
      "bounds of 2^31",
    );
    assert.equal(
      code(() => (nk.delta_band3_bf16 as (...x: unknown[]) => void)(mem, b, b, b, b, 32)),
      "ERR_ARGS",
    );
    // the masked kernels: a keep-mask past the end, the sums' accumulators past the end or misaligned
    a.u32(table, 12).set([b, size - 8, 0, 0, b, 0, 0, 0, b, 0, 0, 0]);
    assert.equal(
      code(() => nk.ta_consensus3_bf16_out(mem, b, table, 1, 1, out, 32)),
      "ERR_SIZE",
    );
    assert.deepEqual([...new Set(a.u16(out, 32))], [0x1234], "nothing written");
    assert.equal(
      code(() => nk.l1_sums3_bf16(mem, b, b, b, b, b, b, b, 32, size - 100)),
      "ERR_SIZE",
    );
    assert.equal(
      code(() => nk.l1_sums3_bf16(mem, b, b, b, b, b, b, b, 32, acc + 4)),
      "ERR_SIZE",
    );
    assert.equal(
      code(() => nk.l1_sums3_bf16(mem, b, b, b, size - 8, b, b, b, 32, acc)),
      "ERR_SIZE",
    );
    assert.equal(
      code(() => nk.l1_sums3_bf16(mem, b, b, b, b, b, b, b, 1.5, acc)),
      "ERR_ARGS",
    );
    assert.equal(
      code(() => nk.bernoulli(mem, 1, 2, 0, 1 << 30, size - 10, 11)),
      "ERR_SIZE",
      "a mask past the end",
    );
    assert.equal(
      code(() => nk.bernoulli(mem, 1, 2, 0, 2 ** 32, out, 8)),
      "ERR_ARGS",
      "a threshold of 2^32",
    );
    a.f64(acc, 27).fill(0);
    nk.l1_sums3_bf16(mem, b, b, b, b, b, b, b, 32, acc); // and a valid call on the same memory goes through
    assert.equal(a.f64(acc, 27)[0], 0);
  });
});
