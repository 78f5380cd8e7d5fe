// fusionkit's WebAssembly SIMD kernels for merging and for nn epilogues (AssemblyScript; compiled by
// `npm run build:wasm`, which writes src/wasm/kernels.wasm.ts). Every kernel works on raw pointers into the
// imported linear memory, which the JS side (src/wasm/arena.ts) manages; nothing here allocates. Each computes, bit for bit, what the pure-JS path
// (src/tensor/convert.ts, src/merge/*.ts, src/tensor/kernels.ts) computes: float32 operations in the same order,
// so IEEE rounding and NaN / inf / -0 handling are identical.
//
// Model tables: k records of 16 bytes, { x: u32 pointer, keep: u32 pointer (0 = keep all), scale: f32, w: f32 }.

const ABS = 0x7fffffff;

// ---- element loads: float32 arrays, or bf16 bits widened in the load (the _bf16 kernels read raw checkpoints) ----

// @ts-ignore: decorator
@inline function vld<T>(p: usize, i: i32): v128 {
  if (sizeof<T>() == 2) return i32x4.shl(v128.load16x4_u(p + (<usize>i << 1)), 16);
  return v128.load(p + (<usize>i << 2));
}

// @ts-ignore: decorator
@inline function sld<T>(p: usize, i: i32): f32 {
  if (sizeof<T>() == 2) return reinterpret<f32>((<u32>load<u16>(p + (<usize>i << 1))) << 16);
  return load<f32>(p + (<usize>i << 2));
}

// ---- bf16 / f16 codecs ----

/** float32 bits -> bfloat16 bits in the low half of each lane (round to nearest even; NaN quieted). */
// @ts-ignore: decorator
@inline function bf16Bits(u: v128): v128 {
  const isNan = i32x4.gt_u(v128.and(u, i32x4.splat(ABS)), i32x4.splat(0x7f800000));
  const nanBits = v128.or(i32x4.shr_u(u, 16), i32x4.splat(0x40));
  const odd = v128.and(i32x4.shr_u(u, 16), i32x4.splat(1));
  const rounded = i32x4.shr_u(i32x4.add(i32x4.add(u, i32x4.splat(0x7fff)), odd), 16);
  return v128.bitselect(nanBits, rounded, isNan);
}

// @ts-ignore: decorator
@inline function bf16BitsScalar(u: u32): u32 {
  if ((u & ABS) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function decode_bf16(src: usize, dst: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const v = v128.load(src + (<usize>i << 1));
    v128.store(dst + (<usize>i << 2), widenLo(v));
    v128.store(dst + (<usize>i << 2), widenHi(v), 16);
  }
  for (; i < n; i++) store<u32>(dst + (<usize>i << 2), (<u32>load<u16>(src + (<usize>i << 1))) << 16);
}

/** f16 -> f32 through the caller's 65536-entry table (exact values, built by src/tensor/float16.ts). */
export function decode_f16(src: usize, dst: usize, n: i32, table: usize): void {
  for (let i = 0; i < n; i++) {
    const h = <usize>load<u16>(src + (<usize>i << 1));
    store<u32>(dst + (<usize>i << 2), load<u32>(table + (h << 2)));
  }
}

/** In place: round float32 values to bfloat16 precision and back (the config's `dtype: bfloat16` cast). */
export function round_bf16(p: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const a = p + (<usize>i << 2);
    v128.store(a, i32x4.shl(bf16Bits(v128.load(a)), 16));
  }
  for (; i < n; i++) {
    const a = p + (<usize>i << 2);
    store<u32>(a, bf16BitsScalar(load<u32>(a)) << 16);
  }
}

export function encode_bf16(src: usize, dst: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const a = bf16Bits(v128.load(src + (<usize>i << 2)));
    const b = bf16Bits(v128.load(src + (<usize>i << 2), 16));
    v128.store(dst + (<usize>i << 1), i16x8.narrow_i32x4_u(a, b));
  }
  for (; i < n; i++) store<u16>(dst + (<usize>i << 1), <u16>bf16BitsScalar(load<u32>(src + (<usize>i << 2))));
}

/** The low / high four of eight raw bf16 values (one 16-byte load) as float32 lanes. */
// @ts-ignore: decorator
@inline function widenLo(raw: v128): v128 {
  return i32x4.shl(i32x4.extend_low_i16x8_u(raw), 16);
}

// @ts-ignore: decorator
@inline function widenHi(raw: v128): v128 {
  return i32x4.shl(i32x4.extend_high_i16x8_u(raw), 16);
}

/** Eight float32 results (two vectors, in order) stored as bf16 bits, rounded as encode_bf16. */
// @ts-ignore: decorator
@inline function storeBf16x8(p: usize, lo: v128, hi: v128): void {
  v128.store(p, i16x8.narrow_i32x4_u(bf16Bits(lo), bf16Bits(hi)));
}

// ---- result stores: float32, or bf16 bits rounded to nearest even (the _out kernels write bf16 checkpoints) ----

// @ts-ignore: decorator
@inline function vst<O>(p: usize, i: i32, v: v128): void {
  if (sizeof<O>() == 2) {
    const bits = bf16Bits(v);
    v128.store64_lane(p + (<usize>i << 1), i16x8.narrow_i32x4_u(bits, bits), 0);
  } else v128.store(p + (<usize>i << 2), v);
}

// @ts-ignore: decorator
@inline function sst<O>(p: usize, i: i32, v: f32): void {
  if (sizeof<O>() == 2) store<u16>(p + (<usize>i << 1), <u16>bf16BitsScalar(reinterpret<u32>(v)));
  else store<f32>(p + (<usize>i << 2), v);
}

// ---- linear: acc = x0 * w0; acc += fround(xi * wi) in model order; acc / d ----

export function linear(xs: usize, ws: usize, k: i32, d: f32, out: usize, n: i32): void {
  const dv = f32x4.splat(d);
  const x0 = <usize>load<u32>(xs);
  const w0 = f32x4.splat(load<f32>(ws));
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const off = <usize>i << 2;
    let acc = f32x4.mul(v128.load(x0 + off), w0);
    for (let m = 1; m < k; m++) {
      const x = <usize>load<u32>(xs + (<usize>m << 2));
      acc = f32x4.add(acc, f32x4.mul(v128.load(x + off), f32x4.splat(load<f32>(ws + (<usize>m << 2)))));
    }
    v128.store(out + off, f32x4.div(acc, dv));
  }
  for (; i < n; i++) {
    const off = <usize>i << 2;
    let acc: f32 = load<f32>(x0 + off) * load<f32>(ws);
    for (let m = 1; m < k; m++) {
      acc = acc + load<f32>(<usize>load<u32>(xs + (<usize>m << 2)) + off) * load<f32>(ws + (<usize>m << 2));
    }
    store<f32>(out + off, acc / d);
  }
}

/** linear on bf16 inputs into a bf16 output: the same float32 steps, the inputs widened and the result rounded (RNE). */
export function linear_bf16(xs: usize, ws: usize, k: i32, d: f32, out: usize, n: i32): void {
  const dv = f32x4.splat(d);
  const x0 = <usize>load<u32>(xs);
  const w0 = f32x4.splat(load<f32>(ws));
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    let lo = f32x4.mul(vld<u16>(x0, i), w0);
    let hi = f32x4.mul(vld<u16>(x0, i + 4), w0);
    for (let m = 1; m < k; m++) {
      const x = <usize>load<u32>(xs + (<usize>m << 2));
      const w = f32x4.splat(load<f32>(ws + (<usize>m << 2)));
      lo = f32x4.add(lo, f32x4.mul(vld<u16>(x, i), w));
      hi = f32x4.add(hi, f32x4.mul(vld<u16>(x, i + 4), w));
    }
    const bits = i16x8.narrow_i32x4_u(bf16Bits(f32x4.div(lo, dv)), bf16Bits(f32x4.div(hi, dv)));
    v128.store(out + (<usize>i << 1), bits);
  }
  for (; i < n; i++) {
    let acc: f32 = sld<u16>(x0, i) * load<f32>(ws);
    for (let m = 1; m < k; m++) {
      acc = acc + sld<u16>(<usize>load<u32>(xs + (<usize>m << 2)), i) * load<f32>(ws + (<usize>m << 2));
    }
    store<u16>(out + (<usize>i << 1), <u16>bf16BitsScalar(reinterpret<u32>(acc / d)));
  }
}

// ---- task arithmetic ----

/**
 * Non-consensus combine (combineSum): mixed = sum over models of kept fround(t * w), t = x - b (times scale when
 * scale != 1); dropped entries add nothing. m = mixed [/ divisor] [* lambda]; out = b + m.
 */
export function ta_sum(
  b: usize,
  models: usize,
  k: i32,
  normalize: i32,
  divisor: f32,
  lambda: f32,
  out: usize,
  n: i32,
): void {
  const dv = f32x4.splat(divisor);
  const lv = f32x4.splat(lambda);
  const one = f32x4.splat(1);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const off = <usize>i << 2;
    const bv = v128.load(b + off);
    let mixed = f32x4.splat(0);
    for (let m = 0; m < k; m++) {
      const rec = models + (<usize>m << 4);
      const keep = <usize>load<u32>(rec, 4);
      const scale = load<f32>(rec, 8);
      let t = f32x4.sub(v128.load(<usize>load<u32>(rec) + off), bv);
      if (scale != 1) t = f32x4.mul(t, f32x4.splat(scale));
      const sum = f32x4.add(mixed, f32x4.mul(t, f32x4.splat(load<f32>(rec, 12))));
      if (keep == 0) mixed = sum;
      else {
        const kv = i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(keep + <usize>i)));
        mixed = v128.bitselect(sum, mixed, i32x4.ne(kv, i32x4.splat(0)));
      }
    }
    if (normalize) mixed = f32x4.div(mixed, dv);
    if (lambda != 1) mixed = f32x4.mul(mixed, lv);
    v128.store(out + off, f32x4.add(bv, mixed));
  }
  for (; i < n; i++) {
    const off = <usize>i << 2;
    const bs = load<f32>(b + off);
    let mixed: f32 = 0;
    for (let m = 0; m < k; m++) {
      const rec = models + (<usize>m << 4);
      const keep = <usize>load<u32>(rec, 4);
      const scale = load<f32>(rec, 8);
      let t: f32 = load<f32>(<usize>load<u32>(rec) + off) - bs;
      if (scale != 1) t = t * scale;
      if (keep == 0 || load<u8>(keep + <usize>i) != 0) mixed = mixed + t * load<f32>(rec, 12);
    }
    if (normalize) mixed = mixed / divisor;
    if (lambda != 1) mixed = mixed * lambda;
    store<f32>(out + off, bs + mixed);
  }
  void one;
}

/** ta_sum for exactly three models, every operand in registers (task_arithmetic, dare_linear). */
// @ts-ignore: decorator
@inline function ta_sum3_impl<T, O>(b: usize, models: usize, normalize: i32, divisor: f32, lambda: f32, out: usize, n: i32): void {
  const x0 = <usize>load<u32>(models, 0);
  const q0 = <usize>load<u32>(models, 4);
  const s0 = load<f32>(models, 8);
  const w0 = f32x4.splat(load<f32>(models, 12));
  const x1 = <usize>load<u32>(models, 16);
  const q1 = <usize>load<u32>(models, 20);
  const s1 = load<f32>(models, 24);
  const w1 = f32x4.splat(load<f32>(models, 28));
  const x2 = <usize>load<u32>(models, 32);
  const q2 = <usize>load<u32>(models, 36);
  const s2 = load<f32>(models, 40);
  const w2 = f32x4.splat(load<f32>(models, 44));
  const dv = f32x4.splat(divisor);
  const lv = f32x4.splat(lambda);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const bv = vld<T>(b, i);
    let mixed = f32x4.splat(0);
    mixed = sumStep(mixed, vld<T>(x0, i), bv, s0, w0, q0, i);
    mixed = sumStep(mixed, vld<T>(x1, i), bv, s1, w1, q1, i);
    mixed = sumStep(mixed, vld<T>(x2, i), bv, s2, w2, q2, i);
    if (normalize) mixed = f32x4.div(mixed, dv);
    if (lambda != 1) mixed = f32x4.mul(mixed, lv);
    vst<O>(out, i, f32x4.add(bv, mixed));
  }
  for (; i < n; i++) {
    const bs = sld<T>(b, i);
    let mixed: f32 = 0;
    for (let m = 0; m < 3; m++) {
      const rec = models + (<usize>m << 4);
      const keep = <usize>load<u32>(rec, 4);
      const scale = load<f32>(rec, 8);
      let t: f32 = sld<T>(<usize>load<u32>(rec), i) - bs;
      if (scale != 1) t = t * scale;
      if (keep == 0 || load<u8>(keep + <usize>i) != 0) mixed = mixed + t * load<f32>(rec, 12);
    }
    if (normalize) mixed = mixed / divisor;
    if (lambda != 1) mixed = mixed * lambda;
    sst<O>(out, i, bs + mixed);
  }
}

export function ta_sum3(b: usize, models: usize, normalize: i32, divisor: f32, lambda: f32, out: usize, n: i32): void {
  ta_sum3_impl<f32, f32>(b, models, normalize, divisor, lambda, out, n);
}

/** ta_sum3 on raw bf16 inputs (base and models widened in the loads); float32 output. */
export function ta_sum3_bf16(b: usize, models: usize, normalize: i32, divisor: f32, lambda: f32, out: usize, n: i32): void {
  ta_sum3_impl<u16, f32>(b, models, normalize, divisor, lambda, out, n);
}

/** ta_sum3 from bf16 inputs into a bf16 output (rounded to nearest even, as encode_bf16). */
export function ta_sum3_bf16_out(b: usize, models: usize, normalize: i32, divisor: f32, lambda: f32, out: usize, n: i32): void {
  ta_sum3_impl<u16, u16>(b, models, normalize, divisor, lambda, out, n);
}

// @ts-ignore: decorator
@inline function sumStep(mixed: v128, x: v128, bv: v128, scale: f32, wv: v128, keep: usize, i: i32): v128 {
  let t = f32x4.sub(x, bv);
  if (scale != 1) t = f32x4.mul(t, f32x4.splat(scale));
  const sum = f32x4.add(mixed, f32x4.mul(t, wv));
  if (keep == 0) return sum;
  return v128.bitselect(sum, mixed, keepLanes(keep, i)); // dropped entries add nothing (not even +0)
}

/**
 * Sign-consensus combine by sum (combineConsensus, TIES): v = kept ? fround(t * w) : 0 * w; vote = sum v in
 * model order; a model takes part where v has the elected sign (vote >= 0 elects +; zeros never do); mixed and
 * the divisor sum the taking part; m = mixed [/ (divisor or 1 when 0)] [* lambda]; out = b + m.
 * Scratch: 4 * k floats at `vs`.
 */
export function ta_consensus(
  b: usize,
  models: usize,
  k: i32,
  normalize: i32,
  lambda: f32,
  out: usize,
  n: i32,
  vs: usize,
): void {
  const lv = f32x4.splat(lambda);
  const one = f32x4.splat(1);
  const zero = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const off = <usize>i << 2;
    const bv = v128.load(b + off);
    let vote = zero;
    for (let m = 0; m < k; m++) {
      const rec = models + (<usize>m << 4);
      const keep = <usize>load<u32>(rec, 4);
      const scale = load<f32>(rec, 8);
      const w = load<f32>(rec, 12);
      let t = f32x4.sub(v128.load(<usize>load<u32>(rec) + off), bv);
      if (scale != 1) t = f32x4.mul(t, f32x4.splat(scale));
      let v = f32x4.mul(t, f32x4.splat(w));
      if (keep != 0) {
        const kv = i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(keep + <usize>i)));
        v = v128.bitselect(v, f32x4.splat(<f32>0 * w), i32x4.ne(kv, i32x4.splat(0)));
      }
      v128.store(vs + (<usize>m << 4), v);
      vote = f32x4.add(vote, v);
    }
    const pos = f32x4.ge(vote, zero);
    let mixed = zero;
    let div = zero;
    for (let m = 0; m < k; m++) {
      const v = v128.load(vs + (<usize>m << 4));
      const sel = v128.bitselect(f32x4.gt(v, zero), f32x4.lt(v, zero), pos);
      mixed = v128.bitselect(f32x4.add(mixed, v), mixed, sel);
      div = v128.bitselect(f32x4.add(div, f32x4.splat(load<f32>(models + (<usize>m << 4), 12))), div, sel);
    }
    if (normalize) mixed = f32x4.div(mixed, v128.bitselect(one, div, f32x4.eq(div, zero)));
    if (lambda != 1) mixed = f32x4.mul(mixed, lv);
    v128.store(out + off, f32x4.add(bv, mixed));
  }
  for (; i < n; i++) {
    const off = <usize>i << 2;
    const bs = load<f32>(b + off);
    let vote: f32 = 0;
    for (let m = 0; m < k; m++) {
      const rec = models + (<usize>m << 4);
      const keep = <usize>load<u32>(rec, 4);
      const scale = load<f32>(rec, 8);
      const w = load<f32>(rec, 12);
      let t: f32 = load<f32>(<usize>load<u32>(rec) + off) - bs;
      if (scale != 1) t = t * scale;
      const v: f32 = keep == 0 || load<u8>(keep + <usize>i) != 0 ? t * w : <f32>0 * w;
      store<f32>(vs + (<usize>m << 2), v);
      vote = vote + v;
    }
    let mixed: f32 = 0;
    let div: f32 = 0;
    for (let m = 0; m < k; m++) {
      const v = load<f32>(vs + (<usize>m << 2));
      if (vote >= 0 ? v > 0 : v < 0) {
        mixed = mixed + v;
        div = div + load<f32>(models + (<usize>m << 4), 12);
      }
    }
    if (normalize) mixed = mixed / (div == 0 ? <f32>1 : div);
    if (lambda != 1) mixed = mixed * lambda;
    store<f32>(out + off, bs + mixed);
  }
}

// @ts-ignore: decorator
@inline function keepLanes(keep: usize, i: i32): v128 {
  if (keep == 0) return i32x4.splat(-1);
  return i32x4.neg(i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(keep + <usize>i))));
}

/** The keep-mask bytes of eight elements (0 = all kept) as eight i16 lanes of all ones (kept) or zeros. */
// @ts-ignore: decorator
@inline function keepHalves(keep: usize, i: i32): v128 {
  if (keep == 0) return i32x4.splat(-1);
  return i16x8.neg(i16x8.extend_low_i8x16_u(v128.load64_zero(keep + <usize>i)));
}

/**
 * v = kept ? fround(t * w) : 0 * w. With a finite weight the dropped value is +-0, and +0 (a plain AND) gives
 * the same votes and sums: zeros never take part, and a vote that starts at +0 is never -0.
 */
// @ts-ignore: decorator
@inline function weighted<T>(x: usize, i: i32, bv: v128, scale: f32, w: f32, keep: v128, finite: bool): v128 {
  let t = f32x4.sub(vld<T>(x, i), bv);
  if (scale != 1) t = f32x4.mul(t, f32x4.splat(scale));
  const v = f32x4.mul(t, f32x4.splat(w));
  if (finite) return v128.and(v, keep);
  return v128.bitselect(v, f32x4.splat(<f32>0 * w), keep);
}

// Taking part: v has the elected sign. With `flip` = the sign bit where the vote elected -, v ^ flip > 0 says so
// (NaN and zeros never pass). A model that does not take part adds +0, which changes neither sum: both start at
// +0 and only ever hold +0 or a sum of nonzero values, never -0.
// @ts-ignore: decorator
@inline function takes(v: v128, flip: v128): v128 {
  return f32x4.gt(v128.xor(v, flip), f32x4.splat(0));
}

// @ts-ignore: decorator
@inline function scalarWeighted<T>(x: usize, keep: usize, i: i32, bs: f32, scale: f32, w: f32): f32 {
  let t: f32 = sld<T>(x, i) - bs;
  if (scale != 1) t = t * scale;
  return keep == 0 || load<u8>(keep + <usize>i) != 0 ? t * w : <f32>0 * w;
}

/** v = kept ? fround(t * w) : 0 * w for a delta t (before scaling), as `weighted`. */
// @ts-ignore: decorator
@inline function weightedDelta(d: v128, scale: f32, w: f32, keep: v128, finite: bool): v128 {
  let t = d;
  if (scale != 1) t = f32x4.mul(t, f32x4.splat(scale));
  const v = f32x4.mul(t, f32x4.splat(w));
  if (finite) return v128.and(v, keep);
  return v128.bitselect(v, f32x4.splat(<f32>0 * w), keep);
}

/** The sign election of three weighted deltas and the combine: b + lambda * (sum of those taking part [/ weights]). */
// @ts-ignore: decorator
@inline function elect3(bv: v128, v0: v128, v1: v128, v2: v128, w0: f32, w1: f32, w2: f32, normalize: i32, lambda: f32): v128 {
  const zero = f32x4.splat(0);
  const vote = f32x4.add(f32x4.add(f32x4.add(zero, v0), v1), v2);
  const flip = v128.andnot(i32x4.splat(0x80000000), f32x4.ge(vote, zero));
  const t0 = takes(v0, flip);
  const t1 = takes(v1, flip);
  const t2 = takes(v2, flip);
  let mixed = f32x4.add(f32x4.add(f32x4.add(zero, v128.and(v0, t0)), v128.and(v1, t1)), v128.and(v2, t2));
  if (normalize) {
    const div = f32x4.add(
      f32x4.add(f32x4.add(zero, v128.and(f32x4.splat(w0), t0)), v128.and(f32x4.splat(w1), t1)),
      v128.and(f32x4.splat(w2), t2),
    );
    mixed = f32x4.div(mixed, v128.bitselect(f32x4.splat(1), div, f32x4.eq(div, zero)));
  }
  if (lambda != 1) mixed = f32x4.mul(mixed, f32x4.splat(lambda));
  return f32x4.add(bv, mixed);
}

// @ts-ignore: decorator
@inline function elect3Scalar(bs: f32, v0: f32, v1: f32, v2: f32, w0: f32, w1: f32, w2: f32, normalize: i32, lambda: f32): f32 {
  const vote: f32 = <f32>0 + v0 + v1 + v2;
  let mixed: f32 = 0;
  let div: f32 = 0;
  if (vote >= 0 ? v0 > 0 : v0 < 0) {
    mixed = mixed + v0;
    div = div + w0;
  }
  if (vote >= 0 ? v1 > 0 : v1 < 0) {
    mixed = mixed + v1;
    div = div + w1;
  }
  if (vote >= 0 ? v2 > 0 : v2 < 0) {
    mixed = mixed + v2;
    div = div + w2;
  }
  if (normalize) mixed = mixed / (div == 0 ? <f32>1 : div);
  if (lambda != 1) mixed = mixed * lambda;
  return bs + mixed;
}

/** ta_consensus for exactly three models, every operand in registers (the common TIES / DARE case). */
// @ts-ignore: decorator
@inline function ta_consensus3_impl<T, O>(b: usize, models: usize, normalize: i32, lambda: f32, out: usize, n: i32): void {
  const x0 = <usize>load<u32>(models, 0);
  const q0 = <usize>load<u32>(models, 4);
  const s0 = load<f32>(models, 8);
  const w0 = load<f32>(models, 12);
  const x1 = <usize>load<u32>(models, 16);
  const q1 = <usize>load<u32>(models, 20);
  const s1 = load<f32>(models, 24);
  const w1 = load<f32>(models, 28);
  const x2 = <usize>load<u32>(models, 32);
  const q2 = <usize>load<u32>(models, 36);
  const s2 = load<f32>(models, 40);
  const w2 = load<f32>(models, 44);
  const finite = Mathf.abs(w0) < Infinity && Mathf.abs(w1) < Infinity && Mathf.abs(w2) < Infinity;
  let i = 0;
  if (sizeof<T>() == 2 && sizeof<O>() == 2) {
    // bf16 in and out: eight elements a step, one load per input and mask, one store
    for (; i + 8 <= n; i += 8) {
      const off = <usize>i << 1;
      const braw = v128.load(b + off);
      const bl = widenLo(braw);
      const bh = widenHi(braw);
      const r0 = v128.load(x0 + off);
      const r1 = v128.load(x1 + off);
      const r2 = v128.load(x2 + off);
      const m0 = keepHalves(q0, i);
      const m1 = keepHalves(q1, i);
      const m2 = keepHalves(q2, i);
      const vl = elect3(
        bl,
        weightedDelta(f32x4.sub(widenLo(r0), bl), s0, w0, i32x4.extend_low_i16x8_s(m0), finite),
        weightedDelta(f32x4.sub(widenLo(r1), bl), s1, w1, i32x4.extend_low_i16x8_s(m1), finite),
        weightedDelta(f32x4.sub(widenLo(r2), bl), s2, w2, i32x4.extend_low_i16x8_s(m2), finite),
        w0,
        w1,
        w2,
        normalize,
        lambda,
      );
      const vh = elect3(
        bh,
        weightedDelta(f32x4.sub(widenHi(r0), bh), s0, w0, i32x4.extend_high_i16x8_s(m0), finite),
        weightedDelta(f32x4.sub(widenHi(r1), bh), s1, w1, i32x4.extend_high_i16x8_s(m1), finite),
        weightedDelta(f32x4.sub(widenHi(r2), bh), s2, w2, i32x4.extend_high_i16x8_s(m2), finite),
        w0,
        w1,
        w2,
        normalize,
        lambda,
      );
      storeBf16x8(out + off, vl, vh);
    }
  }
  for (; i + 4 <= n; i += 4) {
    const bv = vld<T>(b, i);
    const v0 = weighted<T>(x0, i, bv, s0, w0, keepLanes(q0, i), finite);
    const v1 = weighted<T>(x1, i, bv, s1, w1, keepLanes(q1, i), finite);
    const v2 = weighted<T>(x2, i, bv, s2, w2, keepLanes(q2, i), finite);
    vst<O>(out, i, elect3(bv, v0, v1, v2, w0, w1, w2, normalize, lambda));
  }
  for (; i < n; i++) {
    const bs = sld<T>(b, i);
    const v0 = scalarWeighted<T>(x0, q0, i, bs, s0, w0);
    const v1 = scalarWeighted<T>(x1, q1, i, bs, s1, w1);
    const v2 = scalarWeighted<T>(x2, q2, i, bs, s2, w2);
    sst<O>(out, i, elect3Scalar(bs, v0, v1, v2, w0, w1, w2, normalize, lambda));
  }
}

// ---- the same with top-k keep-masks computed in place (TIES): keep = key > thr, plus the first ties ----

/** The lowest `left` set bits of a 4-bit lane mask (the ties still to keep, in index order). */
// @ts-ignore: decorator
@inline function firstBits(mask: i32, left: i32): i32 {
  let kept = 0;
  let m = mask;
  while (m != 0 && left > 0) {
    const low = m & -m;
    kept |= low;
    m ^= low;
    left--;
  }
  return kept;
}

// @ts-ignore: decorator
@inline function laneMask(bits: i32): v128 {
  return i32x4.ne(v128.and(i32x4.splat(bits), i32x4(1, 2, 4, 8)), i32x4.splat(0));
}

/** Ties still to keep for the model keepTies is working on (read and updated by it). */
let tieLeft: i32 = 0;

/**
 * Keep-mask k of one group of four keys a, plus the first tieLeft of its keys equal to the threshold tv, in lane
 * order; tieLeft drops by the ties kept. Four or more left: every tie in the group is kept (no per-lane loop).
 */
// @ts-ignore: decorator
@inline function keepTies(k: v128, a: v128, tv: v128): v128 {
  const q = i32x4.eq(a, tv);
  if (tieLeft >= 4) {
    tieLeft -= popcnt<i32>(i32x4.bitmask(q));
    return v128.or(k, q);
  }
  const e = firstBits(i32x4.bitmask(q), tieLeft);
  tieLeft -= popcnt<i32>(e);
  return v128.or(k, laneMask(e));
}

/**
 * ta_consensus3 where model m keeps entries whose key bits(|x - b|) exceeds thr_m, and the first left_m entries
 * equal to it in index order (what delta_topk_mask writes as a mask). `sel`: thr_0..2 (u32; -1 keeps all), then
 * left_0..2 (i32), read and updated for the next chunk. The records' keep pointers are ignored.
 */
// @ts-ignore: decorator
@inline function ta_consensus3_topk_impl<T, O>(b: usize, models: usize, sel: usize, normalize: i32, lambda: f32, out: usize, n: i32): void {
  const x0 = <usize>load<u32>(models, 0);
  const s0 = load<f32>(models, 8);
  const w0 = load<f32>(models, 12);
  const x1 = <usize>load<u32>(models, 16);
  const s1 = load<f32>(models, 24);
  const w1 = load<f32>(models, 28);
  const x2 = <usize>load<u32>(models, 32);
  const s2 = load<f32>(models, 40);
  const w2 = load<f32>(models, 44);
  const th0 = load<i32>(sel, 0);
  const th1 = load<i32>(sel, 4);
  const th2 = load<i32>(sel, 8);
  let l0 = load<i32>(sel, 12);
  let l1 = load<i32>(sel, 16);
  let l2 = load<i32>(sel, 20);
  const tv0 = i32x4.splat(th0);
  const tv1 = i32x4.splat(th1);
  const tv2 = i32x4.splat(th2);
  const abs = i32x4.splat(ABS);
  const finite = Mathf.abs(w0) < Infinity && Mathf.abs(w1) < Infinity && Mathf.abs(w2) < Infinity;
  let i = 0;
  if (sizeof<T>() == 2 && sizeof<O>() == 2) {
    // bf16 in and out: eight elements a step, one load per input and one store (the two groups of four in order,
    // so the ties are still kept in index order)
    for (; i + 8 <= n; i += 8) {
      const off = <usize>i << 1;
      const braw = v128.load(b + off);
      const bl = widenLo(braw);
      const bh = widenHi(braw);
      const r0 = v128.load(x0 + off);
      const r1 = v128.load(x1 + off);
      const r2 = v128.load(x2 + off);
      const d0l = f32x4.sub(widenLo(r0), bl);
      const d0h = f32x4.sub(widenHi(r0), bh);
      const d1l = f32x4.sub(widenLo(r1), bl);
      const d1h = f32x4.sub(widenHi(r1), bh);
      const d2l = f32x4.sub(widenLo(r2), bl);
      const d2h = f32x4.sub(widenHi(r2), bh);
      const a0l = v128.and(d0l, abs);
      const a0h = v128.and(d0h, abs);
      const a1l = v128.and(d1l, abs);
      const a1h = v128.and(d1h, abs);
      const a2l = v128.and(d2l, abs);
      const a2h = v128.and(d2h, abs);
      let k0l = i32x4.gt_s(a0l, tv0);
      let k0h = i32x4.gt_s(a0h, tv0);
      let k1l = i32x4.gt_s(a1l, tv1);
      let k1h = i32x4.gt_s(a1h, tv1);
      let k2l = i32x4.gt_s(a2l, tv2);
      let k2h = i32x4.gt_s(a2h, tv2);
      if (l0 > 0) {
        tieLeft = l0;
        k0l = keepTies(k0l, a0l, tv0);
        if (tieLeft > 0) k0h = keepTies(k0h, a0h, tv0);
        l0 = tieLeft;
      }
      if (l1 > 0) {
        tieLeft = l1;
        k1l = keepTies(k1l, a1l, tv1);
        if (tieLeft > 0) k1h = keepTies(k1h, a1h, tv1);
        l1 = tieLeft;
      }
      if (l2 > 0) {
        tieLeft = l2;
        k2l = keepTies(k2l, a2l, tv2);
        if (tieLeft > 0) k2h = keepTies(k2h, a2h, tv2);
        l2 = tieLeft;
      }
      const vl = elect3(
        bl,
        weightedDelta(d0l, s0, w0, k0l, finite),
        weightedDelta(d1l, s1, w1, k1l, finite),
        weightedDelta(d2l, s2, w2, k2l, finite),
        w0,
        w1,
        w2,
        normalize,
        lambda,
      );
      const vh = elect3(
        bh,
        weightedDelta(d0h, s0, w0, k0h, finite),
        weightedDelta(d1h, s1, w1, k1h, finite),
        weightedDelta(d2h, s2, w2, k2h, finite),
        w0,
        w1,
        w2,
        normalize,
        lambda,
      );
      storeBf16x8(out + off, vl, vh);
    }
  }
  for (; i + 4 <= n; i += 4) {
    const bv = vld<T>(b, i);
    const d0 = f32x4.sub(vld<T>(x0, i), bv);
    const d1 = f32x4.sub(vld<T>(x1, i), bv);
    const d2 = f32x4.sub(vld<T>(x2, i), bv);
    const a0 = v128.and(d0, abs);
    const a1 = v128.and(d1, abs);
    const a2 = v128.and(d2, abs);
    // Keys and thresholds are below 2^31 (or thr = -1): signed compares order them.
    let k0 = i32x4.gt_s(a0, tv0);
    let k1 = i32x4.gt_s(a1, tv1);
    let k2 = i32x4.gt_s(a2, tv2);
    if (l0 > 0) {
      tieLeft = l0;
      k0 = keepTies(k0, a0, tv0);
      l0 = tieLeft;
    }
    if (l1 > 0) {
      tieLeft = l1;
      k1 = keepTies(k1, a1, tv1);
      l1 = tieLeft;
    }
    if (l2 > 0) {
      tieLeft = l2;
      k2 = keepTies(k2, a2, tv2);
      l2 = tieLeft;
    }
    const v0 = weightedDelta(d0, s0, w0, k0, finite);
    const v1 = weightedDelta(d1, s1, w1, k1, finite);
    const v2 = weightedDelta(d2, s2, w2, k2, finite);
    vst<O>(out, i, elect3(bv, v0, v1, v2, w0, w1, w2, normalize, lambda));
  }
  for (; i < n; i++) {
    const bs = sld<T>(b, i);
    let t0: f32 = sld<T>(x0, i) - bs;
    let t1: f32 = sld<T>(x1, i) - bs;
    let t2: f32 = sld<T>(x2, i) - bs;
    const e0 = <i32>(reinterpret<u32>(t0) & ABS);
    const e1 = <i32>(reinterpret<u32>(t1) & ABS);
    const e2 = <i32>(reinterpret<u32>(t2) & ABS);
    let keep0 = e0 > th0;
    let keep1 = e1 > th1;
    let keep2 = e2 > th2;
    if (e0 == th0 && l0 > 0) {
      keep0 = true;
      l0--;
    }
    if (e1 == th1 && l1 > 0) {
      keep1 = true;
      l1--;
    }
    if (e2 == th2 && l2 > 0) {
      keep2 = true;
      l2--;
    }
    if (s0 != 1) t0 = t0 * s0;
    if (s1 != 1) t1 = t1 * s1;
    if (s2 != 1) t2 = t2 * s2;
    const v0: f32 = keep0 ? t0 * w0 : <f32>0 * w0;
    const v1: f32 = keep1 ? t1 * w1 : <f32>0 * w1;
    const v2: f32 = keep2 ? t2 * w2 : <f32>0 * w2;
    sst<O>(out, i, elect3Scalar(bs, v0, v1, v2, w0, w1, w2, normalize, lambda));
  }
  store<i32>(sel, l0, 12);
  store<i32>(sel, l1, 16);
  store<i32>(sel, l2, 20);
}

// ---- magnitude selection over |x - b| (float32 bit patterns, sign cleared) ----

/** hist[key >>> 16]++ for key = bits(|x - b|): the 15 high bits (a scatter, so one lane at a time). */
// @ts-ignore: decorator
@inline function delta_hist_hi_impl<T>(x: usize, b: usize, n: i32, hist: usize): void {
  const abs = i32x4.splat(ABS);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const off = <usize>i << 2;
    const h = i32x4.shl(i32x4.shr_u(v128.and(f32x4.sub(vld<T>(x, i), vld<T>(b, i)), abs), 16), 2);
    const a0 = hist + <usize>i32x4.extract_lane(h, 0);
    store<u32>(a0, load<u32>(a0) + 1);
    const a1 = hist + <usize>i32x4.extract_lane(h, 1);
    store<u32>(a1, load<u32>(a1) + 1);
    const a2 = hist + <usize>i32x4.extract_lane(h, 2);
    store<u32>(a2, load<u32>(a2) + 1);
    const a3 = hist + <usize>i32x4.extract_lane(h, 3);
    store<u32>(a3, load<u32>(a3) + 1);
  }
  for (; i < n; i++) {
    const off = <usize>i << 2;
    const d: f32 = sld<T>(x, i) - sld<T>(b, i);
    const a = hist + (<usize>((reinterpret<u32>(d) & ABS) >>> 16) << 2);
    store<u32>(a, load<u32>(a) + 1);
  }
}

/** lo[key & 0xffff]++ for the keys whose high bits equal `bin`. */
// @ts-ignore: decorator
@inline function delta_hist_lo_impl<T>(x: usize, b: usize, n: i32, bin: u32, lo: usize): void {
  const abs = i32x4.splat(ABS);
  const binv = i32x4.splat(bin);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const off = <usize>i << 2;
    const key = v128.and(f32x4.sub(vld<T>(x, i), vld<T>(b, i)), abs);
    const hit = i32x4.bitmask(i32x4.eq(i32x4.shr_u(key, 16), binv));
    if (hit == 0) continue;
    const idx = i32x4.shl(v128.and(key, i32x4.splat(0xffff)), 2);
    if (hit & 1) {
      const a = lo + <usize>i32x4.extract_lane(idx, 0);
      store<u32>(a, load<u32>(a) + 1);
    }
    if (hit & 2) {
      const a = lo + <usize>i32x4.extract_lane(idx, 1);
      store<u32>(a, load<u32>(a) + 1);
    }
    if (hit & 4) {
      const a = lo + <usize>i32x4.extract_lane(idx, 2);
      store<u32>(a, load<u32>(a) + 1);
    }
    if (hit & 8) {
      const a = lo + <usize>i32x4.extract_lane(idx, 3);
      store<u32>(a, load<u32>(a) + 1);
    }
  }
  for (; i < n; i++) {
    const off = <usize>i << 2;
    const d: f32 = sld<T>(x, i) - sld<T>(b, i);
    const kk = reinterpret<u32>(d) & ABS;
    if (kk >>> 16 == bin) {
      const a = lo + (<usize>(kk & 0xffff) << 2);
      store<u32>(a, load<u32>(a) + 1);
    }
  }
}

/**
 * Top-k keep-mask of one chunk: mask = bits(|x - b|) > key, then the first `left` entries equal to key (index
 * order) are kept too. Returns how many ties are still to keep in later chunks.
 */
// @ts-ignore: decorator
@inline function delta_topk_mask_impl<T>(x: usize, b: usize, n: i32, key: u32, left: i32, mask: usize): i32 {
  const abs = i32x4.splat(ABS);
  const kv = i32x4.splat(key);
  const one = i32x4.splat(1);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const off = <usize>i << 2;
    const k0 = v128.and(f32x4.sub(vld<T>(x, i), vld<T>(b, i)), abs);
    const k1 = v128.and(f32x4.sub(vld<T>(x, i + 4), vld<T>(b, i + 4)), abs);
    const k2 = v128.and(f32x4.sub(vld<T>(x, i + 8), vld<T>(b, i + 8)), abs);
    const k3 = v128.and(f32x4.sub(vld<T>(x, i + 12), vld<T>(b, i + 12)), abs);
    const m01 = i16x8.narrow_i32x4_u(v128.and(i32x4.gt_u(k0, kv), one), v128.and(i32x4.gt_u(k1, kv), one));
    const m23 = i16x8.narrow_i32x4_u(v128.and(i32x4.gt_u(k2, kv), one), v128.and(i32x4.gt_u(k3, kv), one));
    v128.store(mask + <usize>i, i8x16.narrow_i16x8_u(m01, m23));
  }
  for (; i < n; i++) {
    const off = <usize>i << 2;
    const d: f32 = sld<T>(x, i) - sld<T>(b, i);
    store<u8>(mask + <usize>i, (reinterpret<u32>(d) & ABS) > key ? 1 : 0);
  }
  // Ties at the threshold, first ones in index order: skip four at a time where none is equal.
  i = 0;
  while (left > 0 && i < n) {
    if (i + 4 <= n) {
      const off = <usize>i << 2;
      const kk = v128.and(f32x4.sub(vld<T>(x, i), vld<T>(b, i)), abs);
      const eq = i32x4.eq(kk, kv);
      if (!v128.any_true(eq)) {
        i += 4;
        continue;
      }
      const bits = i32x4.bitmask(eq);
      for (let l = 0; l < 4 && left > 0; l++) {
        if ((bits >> l) & 1) {
          store<u8>(mask + <usize>(i + l), 1);
          left--;
        }
      }
      i += 4;
      continue;
    }
    const off = <usize>i << 2;
    const d: f32 = sld<T>(x, i) - sld<T>(b, i);
    if ((reinterpret<u32>(d) & ABS) == key) {
      store<u8>(mask + <usize>i, 1);
      left--;
    }
    i++;
  }
  return left;
}

/** One group of four keys of the band pass: those inside the band appended at g (clamped to cap); the new g. */
// @ts-ignore: decorator
@inline function bandKeep(k: v128, lt: v128, hiv: v128, keys: usize, g: u32, cap: u32, pack: usize): u32 {
  // Keys and bounds are below 2^31 (sign bit cleared), so signed compares order them (one instruction each).
  const bits = <u32>i32x4.bitmask(v128.or(lt, i32x4.gt_s(k, hiv))) ^ 15;
  const at = g < cap ? g : cap;
  v128.store(keys + (<usize>at << 2), i8x16.swizzle(k, v128.load(pack + (<usize>bits << 4))));
  return g + popcnt<u32>(bits);
}

/** The band pass's scalar tail from element `from` and its counts: keys below the band (this call), gathered so far. */
// @ts-ignore: decorator
@inline function bandFinish<T>(x: usize, b: usize, from: i32, n: i32, lo: u32, hi: u32, keys: usize, cap: u32, counts: usize, g: u32, below: v128): void {
  let count: u32 = <u32>(
    i32x4.extract_lane(below, 0) + i32x4.extract_lane(below, 1) + i32x4.extract_lane(below, 2) + i32x4.extract_lane(below, 3)
  );
  for (let i = from; i < n; i++) {
    const d: f32 = sld<T>(x, i) - sld<T>(b, i);
    const kk = reinterpret<u32>(d) & ABS;
    if (kk < lo) count++;
    else if (kk <= hi) {
      if (g < cap) store<u32>(keys + (<usize>g << 2), kk);
      g++;
    }
  }
  store<u32>(counts, count, 0);
  store<u32>(counts, g, 4);
}

/**
 * One chunk of the sampled threshold search (a band [lo, hi] of keys expected to hold the threshold; lo, hi <= 2^31 - 1):
 * counts[0] = #{key < lo} in this chunk; keys in [lo, hi] are appended, in index order, to `keys` (u32) from
 * index counts[1] while that is below `cap` (the buffer has 4 spare slots past cap), and counts[1] grows by their
 * number (past `cap` too, so an overflow shows). Branch-free: each group of four is compacted with a byte
 * shuffle from `pack` (16 shuffles, one per lane mask; WasmArena.packTable) and stored whole.
 */
// @ts-ignore: decorator
@inline function delta_band_impl<T>(x: usize, b: usize, n: i32, lo: u32, hi: u32, keys: usize, cap: u32, counts: usize, pack: usize): void {
  const abs = i32x4.splat(ABS);
  const lov = i32x4.splat(lo);
  const hiv = i32x4.splat(hi);
  let below = i32x4.splat(0);
  let g = load<u32>(counts, 4);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const k0 = v128.and(f32x4.sub(vld<T>(x, i), vld<T>(b, i)), abs);
    const k1 = v128.and(f32x4.sub(vld<T>(x, i + 4), vld<T>(b, i + 4)), abs);
    const lt0 = i32x4.lt_s(k0, lov);
    const lt1 = i32x4.lt_s(k1, lov);
    below = i32x4.sub(i32x4.sub(below, lt0), lt1);
    g = bandKeep(k0, lt0, hiv, keys, g, cap, pack);
    g = bandKeep(k1, lt1, hiv, keys, g, cap, pack);
  }
  bandFinish<T>(x, b, i, n, lo, hi, keys, cap, counts, g, below);
}

/**
 * delta_band for three models against one base in one pass (the base is loaded once): records of 32 bytes at
 * `recs`, { lo, hi, keys, cap, counts } (u32) per model; each model's keys and counts as delta_band's.
 */
// @ts-ignore: decorator
@inline function delta_band3_impl<T>(x0: usize, x1: usize, x2: usize, b: usize, n: i32, recs: usize, pack: usize): void {
  const abs = i32x4.splat(ABS);
  const lo0 = load<u32>(recs, 0);
  const hi0 = load<u32>(recs, 4);
  const keys0 = <usize>load<u32>(recs, 8);
  const cap0 = load<u32>(recs, 12);
  const counts0 = <usize>load<u32>(recs, 16);
  const lo1 = load<u32>(recs, 32);
  const hi1 = load<u32>(recs, 36);
  const keys1 = <usize>load<u32>(recs, 40);
  const cap1 = load<u32>(recs, 44);
  const counts1 = <usize>load<u32>(recs, 48);
  const lo2 = load<u32>(recs, 64);
  const hi2 = load<u32>(recs, 68);
  const keys2 = <usize>load<u32>(recs, 72);
  const cap2 = load<u32>(recs, 76);
  const counts2 = <usize>load<u32>(recs, 80);
  const lov0 = i32x4.splat(lo0);
  const hiv0 = i32x4.splat(hi0);
  const lov1 = i32x4.splat(lo1);
  const hiv1 = i32x4.splat(hi1);
  const lov2 = i32x4.splat(lo2);
  const hiv2 = i32x4.splat(hi2);
  let below0 = i32x4.splat(0);
  let below1 = i32x4.splat(0);
  let below2 = i32x4.splat(0);
  let g0 = load<u32>(counts0, 4);
  let g1 = load<u32>(counts1, 4);
  let g2 = load<u32>(counts2, 4);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const bl = vld<T>(b, i);
    const bh = vld<T>(b, i + 4);
    let kl = v128.and(f32x4.sub(vld<T>(x0, i), bl), abs);
    let kh = v128.and(f32x4.sub(vld<T>(x0, i + 4), bh), abs);
    let ll = i32x4.lt_s(kl, lov0);
    let lh = i32x4.lt_s(kh, lov0);
    below0 = i32x4.sub(i32x4.sub(below0, ll), lh);
    g0 = bandKeep(kl, ll, hiv0, keys0, g0, cap0, pack);
    g0 = bandKeep(kh, lh, hiv0, keys0, g0, cap0, pack);
    kl = v128.and(f32x4.sub(vld<T>(x1, i), bl), abs);
    kh = v128.and(f32x4.sub(vld<T>(x1, i + 4), bh), abs);
    ll = i32x4.lt_s(kl, lov1);
    lh = i32x4.lt_s(kh, lov1);
    below1 = i32x4.sub(i32x4.sub(below1, ll), lh);
    g1 = bandKeep(kl, ll, hiv1, keys1, g1, cap1, pack);
    g1 = bandKeep(kh, lh, hiv1, keys1, g1, cap1, pack);
    kl = v128.and(f32x4.sub(vld<T>(x2, i), bl), abs);
    kh = v128.and(f32x4.sub(vld<T>(x2, i + 4), bh), abs);
    ll = i32x4.lt_s(kl, lov2);
    lh = i32x4.lt_s(kh, lov2);
    below2 = i32x4.sub(i32x4.sub(below2, ll), lh);
    g2 = bandKeep(kl, ll, hiv2, keys2, g2, cap2, pack);
    g2 = bandKeep(kh, lh, hiv2, keys2, g2, cap2, pack);
  }
  bandFinish<T>(x0, b, i, n, lo0, hi0, keys0, cap0, counts0, g0, below0);
  bandFinish<T>(x1, b, i, n, lo1, hi1, keys1, cap1, counts1, g1, below1);
  bandFinish<T>(x2, b, i, n, lo2, hi2, keys2, cap2, counts2, g2, below2);
}

/** hist[key >>> 16]++ over n gathered keys (u32). */
export function keys_hist_hi(keys: usize, n: i32, hist: usize): void {
  for (let i = 0; i < n; i++) {
    const a = hist + (<usize>(load<u32>(keys + (<usize>i << 2)) >>> 16) << 2);
    store<u32>(a, load<u32>(a) + 1);
  }
}

/** lo[key & 0xffff]++ over the gathered keys whose high bits equal `bin`. */
export function keys_hist_lo(keys: usize, n: i32, bin: u32, lo: usize): void {
  for (let i = 0; i < n; i++) {
    const key = load<u32>(keys + (<usize>i << 2));
    if (key >>> 16 == bin) {
      const a = lo + (<usize>(key & 0xffff) << 2);
      store<u32>(a, load<u32>(a) + 1);
    }
  }
}

// ---- DARE: keyed counter-based Bernoulli draws ----

// @ts-ignore: decorator
@inline function mix32x4(x: v128): v128 {
  x = v128.xor(x, i32x4.shr_u(x, 16));
  x = i32x4.mul(x, i32x4.splat(0x7feb352d));
  x = v128.xor(x, i32x4.shr_u(x, 15));
  x = i32x4.mul(x, i32x4.splat(0x846ca68b));
  return v128.xor(x, i32x4.shr_u(x, 16));
}

// @ts-ignore: decorator
@inline function mix32(x: u32): u32 {
  x ^= x >>> 16;
  x *= 0x7feb352d;
  x ^= x >>> 15;
  x *= 0x846ca68b;
  return x ^ (x >>> 16);
}

/** Keys of the fine stream (src/tensor/kernels.ts's keyedU32): the low 24 bits of a draw, needed only on ties. */
const FINE_K0: u32 = 0x5bd1e995;
const FINE_K1: u32 = 0x27d4eb2f;

/** Draw number lo of stream (k0, k1) as src/tensor/kernels.ts's keyedU32 (within one 2^32 block of counters). */
// @ts-ignore: decorator
@inline function keyed_u32(k0: u32, k1: u32, lo: u32): u32 {
  const coarse = (mix32(mix32((lo >>> 2) + k0) ^ k1) >>> ((lo & 3) << 3)) & 255;
  return (coarse << 24) | (mix32(mix32(lo + (k0 ^ FINE_K0)) ^ (k1 ^ FINE_K1)) >>> 8);
}

/**
 * mask[i] = keyedU32(lo + i) < threshold (unsigned), for a threshold in (0, 2^32). One hash word gives the top
 * bytes of four consecutive draws; where a byte equals the threshold's top byte (and the threshold's low 24 bits
 * are not 0), the fine stream decides those draws (1 in 256 draws).
 */
export function bernoulli(k0: u32, k1: u32, lo: u32, threshold: u32, mask: usize, n: i32): void {
  let i = 0;
  // The head up to a counter multiple of 4 (a whole hash word), one draw at a time.
  for (; i < n && ((lo + <u32>i) & 3) != 0; i++) store<u8>(mask + <usize>i, keyed_u32(k0, k1, lo + <u32>i) < threshold ? 1 : 0);
  const top = i8x16.splat(<i8>(threshold >>> 24));
  const fine = threshold & 0xffffff;
  const k0v = i32x4.splat(k0);
  const k1v = i32x4.splat(k1);
  const one = i8x16.splat(1);
  let w = i32x4.add(i32x4.splat((lo + <u32>i) >>> 2), i32x4(0, 1, 2, 3));
  const step = i32x4.splat(4);
  for (; i + 32 <= n; i += 32) {
    // Two words at a time: the hash is a chain of dependent multiplies.
    const h = mix32x4(v128.xor(mix32x4(i32x4.add(w, k0v)), k1v));
    const h2 = mix32x4(v128.xor(mix32x4(i32x4.add(i32x4.add(w, step), k0v)), k1v));
    w = i32x4.add(w, i32x4.splat(8));
    let keep = v128.and(i8x16.lt_u(h, top), one);
    let keep2 = v128.and(i8x16.lt_u(h2, top), one);
    if (fine != 0) {
      const tie = i8x16.eq(h, top);
      const tie2 = i8x16.eq(h2, top);
      v128.store(mask + <usize>i, keep);
      v128.store(mask + <usize>i + 16, keep2);
      if (v128.any_true(v128.or(tie, tie2))) fine_ties(k0, k1, lo + <u32>i, fine, i8x16.bitmask(tie) | (i8x16.bitmask(tie2) << 16), mask + <usize>i);
      continue;
    }
    v128.store(mask + <usize>i, keep);
    v128.store(mask + <usize>i + 16, keep2);
  }
  for (; i + 16 <= n; i += 16) {
    const h = mix32x4(v128.xor(mix32x4(i32x4.add(w, k0v)), k1v));
    w = i32x4.add(w, step);
    let keep = v128.and(i8x16.lt_u(h, top), one);
    v128.store(mask + <usize>i, keep);
    if (fine != 0) {
      const tie = i8x16.eq(h, top);
      if (v128.any_true(tie)) fine_ties(k0, k1, lo + <u32>i, fine, i8x16.bitmask(tie), mask + <usize>i);
    }
  }
  for (; i < n; i++) store<u8>(mask + <usize>i, keyed_u32(k0, k1, lo + <u32>i) < threshold ? 1 : 0);
}

/** For each set bit j of `ties` (draws whose top byte equals the threshold's): mask[j] = fine bits of draw lo + j < fine. */
function fine_ties(k0: u32, k1: u32, lo: u32, fine: u32, ties: u32, mask: usize): void {
  while (ties != 0) {
    const j = ctz(ties);
    ties &= ties - 1;
    store<u8>(mask + <usize>j, (mix32(mix32(lo + <u32>j + (k0 ^ FINE_K0)) ^ (k1 ^ FINE_K1)) >>> 8) < fine ? 1 : 0);
  }
}

/** Pack a 0/1 byte mask into bits (bit j of byte i / 8 is mask[i]), for masks kept between passes. */
export function pack_bits(src: usize, dst: usize, n: i32): void {
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    store<u16>(dst + (<usize>i >> 3), <u16>i8x16.bitmask(i8x16.ne(v128.load(src + <usize>i), i8x16.splat(0))));
  }
  for (; i < n; i += 8) {
    let byte: u32 = 0;
    for (let j = 0; j < 8 && i + j < n; j++) byte |= (<u32>(load<u8>(src + <usize>(i + j)) != 0)) << j;
    store<u8>(dst + (<usize>i >> 3), <u8>byte);
  }
}

/** Inverse of pack_bits: 0/1 bytes from bits. */
export function unpack_bits(src: usize, dst: usize, n: i32): void {
  const spread = i8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const bit = i8x16(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  const one = i8x16.splat(1);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const v = i8x16.swizzle(i16x8.splat(load<u16>(src + (<usize>i >> 3))), spread);
    v128.store(dst + <usize>i, v128.and(i8x16.eq(v128.and(v, bit), bit), one));
  }
  for (; i < n; i++) store<u8>(dst + <usize>i, <u8>(((<u32>load<u8>(src + (<usize>i >> 3))) >> (<u32>i & 7)) & 1));
}

// ---- L1 sums (rescale): float64 in four lanes by index mod 4 (src/merge/sparsify.ts's L1Sums) ----

/** |x - b| and the keep-mask as 0 / 1 floats for four entries. */
// @ts-ignore: decorator
@inline function keepFloats(m: usize, i: i32): v128 {
  return f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(m + <usize>i))));
}

/**
 * For three models (x_m, mask_m): before += |x - b|; after += |x - b| * keep unless |x - b| is inf, where
 * infKept |= keep instead. Lane j of each sum takes the entries with index j mod 4 (the chunk starts at a lane-0
 * index; the caller rotates the lanes otherwise). acc: per model 9 float64 { before[4], after[4], infKept (0/1) },
 * read and updated. A short tail is padded with zeros, which leave every sum as it is (they are never -0).
 */
// @ts-ignore: decorator
@inline function l1_sums3_impl<T>(x0: usize, m0: usize, x1: usize, m1: usize, x2: usize, m2: usize, b: usize, n: i32, acc: usize): void {
  let be0a = v128.load(acc, 0);
  let be0b = v128.load(acc, 16);
  let af0a = v128.load(acc, 32);
  let af0b = v128.load(acc, 48);
  let be1a = v128.load(acc, 72);
  let be1b = v128.load(acc, 88);
  let af1a = v128.load(acc, 104);
  let af1b = v128.load(acc, 120);
  let be2a = v128.load(acc, 144);
  let be2b = v128.load(acc, 160);
  let af2a = v128.load(acc, 176);
  let af2b = v128.load(acc, 192);
  const inf = f32x4.splat(Infinity);
  const zero = f32x4.splat(0);
  let ik = i32x4.splat(0);
  let ik1 = i32x4.splat(0);
  let ik2 = i32x4.splat(0);
  let i = 0;
  while (i < n) {
    let a0: v128;
    let a1: v128;
    let a2: v128;
    let q0: v128;
    let q1: v128;
    let q2: v128;
    if (i + 4 <= n) {
      const bv = vld<T>(b, i);
      a0 = f32x4.abs(f32x4.sub(vld<T>(x0, i), bv));
      a1 = f32x4.abs(f32x4.sub(vld<T>(x1, i), bv));
      a2 = f32x4.abs(f32x4.sub(vld<T>(x2, i), bv));
      q0 = keepFloats(m0, i);
      q1 = keepFloats(m1, i);
      q2 = keepFloats(m2, i);
    } else {
      // The last 1-3 entries, in lanes 0.. (n - i - 1); the rest stay +0 with keep 0.
      a0 = zero;
      a1 = zero;
      a2 = zero;
      q0 = zero;
      q1 = zero;
      q2 = zero;
      const bs0 = sld<T>(b, i);
      a0 = f32x4.replace_lane(a0, 0, Mathf.abs(sld<T>(x0, i) - bs0));
      a1 = f32x4.replace_lane(a1, 0, Mathf.abs(sld<T>(x1, i) - bs0));
      a2 = f32x4.replace_lane(a2, 0, Mathf.abs(sld<T>(x2, i) - bs0));
      q0 = f32x4.replace_lane(q0, 0, <f32>load<u8>(m0 + <usize>i));
      q1 = f32x4.replace_lane(q1, 0, <f32>load<u8>(m1 + <usize>i));
      q2 = f32x4.replace_lane(q2, 0, <f32>load<u8>(m2 + <usize>i));
      if (i + 1 < n) {
        const bs1 = sld<T>(b, i + 1);
        a0 = f32x4.replace_lane(a0, 1, Mathf.abs(sld<T>(x0, i + 1) - bs1));
        a1 = f32x4.replace_lane(a1, 1, Mathf.abs(sld<T>(x1, i + 1) - bs1));
        a2 = f32x4.replace_lane(a2, 1, Mathf.abs(sld<T>(x2, i + 1) - bs1));
        q0 = f32x4.replace_lane(q0, 1, <f32>load<u8>(m0 + <usize>(i + 1)));
        q1 = f32x4.replace_lane(q1, 1, <f32>load<u8>(m1 + <usize>(i + 1)));
        q2 = f32x4.replace_lane(q2, 1, <f32>load<u8>(m2 + <usize>(i + 1)));
      }
      if (i + 2 < n) {
        const bs2 = sld<T>(b, i + 2);
        a0 = f32x4.replace_lane(a0, 2, Mathf.abs(sld<T>(x0, i + 2) - bs2));
        a1 = f32x4.replace_lane(a1, 2, Mathf.abs(sld<T>(x1, i + 2) - bs2));
        a2 = f32x4.replace_lane(a2, 2, Mathf.abs(sld<T>(x2, i + 2) - bs2));
        q0 = f32x4.replace_lane(q0, 2, <f32>load<u8>(m0 + <usize>(i + 2)));
        q1 = f32x4.replace_lane(q1, 2, <f32>load<u8>(m1 + <usize>(i + 2)));
        q2 = f32x4.replace_lane(q2, 2, <f32>load<u8>(m2 + <usize>(i + 2)));
      }
    }
    let p0 = f32x4.mul(a0, q0);
    let p1 = f32x4.mul(a1, q1);
    let p2 = f32x4.mul(a2, q2);
    const inf0 = f32x4.eq(a0, inf);
    const inf1 = f32x4.eq(a1, inf);
    const inf2 = f32x4.eq(a2, inf);
    if (v128.any_true(v128.or(v128.or(inf0, inf1), inf2))) {
      // Rare: infinite entries count in infKept instead of `after`.
      ik = v128.or(ik, v128.and(inf0, f32x4.ne(q0, zero)));
      ik1 = v128.or(ik1, v128.and(inf1, f32x4.ne(q1, zero)));
      ik2 = v128.or(ik2, v128.and(inf2, f32x4.ne(q2, zero)));
      p0 = v128.andnot(p0, inf0);
      p1 = v128.andnot(p1, inf1);
      p2 = v128.andnot(p2, inf2);
    }
    be0a = f64x2.add(be0a, f64x2.promote_low_f32x4(a0));
    be0b = f64x2.add(be0b, f64x2.promote_low_f32x4(v128.shuffle<f32>(a0, a0, 2, 3, 0, 1)));
    af0a = f64x2.add(af0a, f64x2.promote_low_f32x4(p0));
    af0b = f64x2.add(af0b, f64x2.promote_low_f32x4(v128.shuffle<f32>(p0, p0, 2, 3, 0, 1)));
    be1a = f64x2.add(be1a, f64x2.promote_low_f32x4(a1));
    be1b = f64x2.add(be1b, f64x2.promote_low_f32x4(v128.shuffle<f32>(a1, a1, 2, 3, 0, 1)));
    af1a = f64x2.add(af1a, f64x2.promote_low_f32x4(p1));
    af1b = f64x2.add(af1b, f64x2.promote_low_f32x4(v128.shuffle<f32>(p1, p1, 2, 3, 0, 1)));
    be2a = f64x2.add(be2a, f64x2.promote_low_f32x4(a2));
    be2b = f64x2.add(be2b, f64x2.promote_low_f32x4(v128.shuffle<f32>(a2, a2, 2, 3, 0, 1)));
    af2a = f64x2.add(af2a, f64x2.promote_low_f32x4(p2));
    af2b = f64x2.add(af2b, f64x2.promote_low_f32x4(v128.shuffle<f32>(p2, p2, 2, 3, 0, 1)));
    i += 4;
  }
  v128.store(acc, be0a, 0);
  v128.store(acc, be0b, 16);
  v128.store(acc, af0a, 32);
  v128.store(acc, af0b, 48);
  if (v128.any_true(ik)) store<f64>(acc, 1, 64);
  v128.store(acc, be1a, 72);
  v128.store(acc, be1b, 88);
  v128.store(acc, af1a, 104);
  v128.store(acc, af1b, 120);
  if (v128.any_true(ik1)) store<f64>(acc, 1, 136);
  v128.store(acc, be2a, 144);
  v128.store(acc, be2b, 160);
  v128.store(acc, af2a, 176);
  v128.store(acc, af2b, 192);
  if (v128.any_true(ik2)) store<f64>(acc, 1, 208);
}

// ---- exported kernels: float32 inputs, and bf16 inputs (x and b pointers to raw bf16) ----

export function ta_consensus3(b: usize, models: usize, normalize: i32, lambda: f32, out: usize, n: i32): void {
  ta_consensus3_impl<f32, f32>(b, models, normalize, lambda, out, n);
}
export function ta_consensus3_bf16(b: usize, models: usize, normalize: i32, lambda: f32, out: usize, n: i32): void {
  ta_consensus3_impl<u16, f32>(b, models, normalize, lambda, out, n);
}
/** ta_consensus3_bf16 with a bf16 result (rounded as encode_bf16). */
export function ta_consensus3_bf16_out(b: usize, models: usize, normalize: i32, lambda: f32, out: usize, n: i32): void {
  ta_consensus3_impl<u16, u16>(b, models, normalize, lambda, out, n);
}
export function ta_consensus3_topk(b: usize, models: usize, sel: usize, normalize: i32, lambda: f32, out: usize, n: i32): void {
  ta_consensus3_topk_impl<f32, f32>(b, models, sel, normalize, lambda, out, n);
}
export function ta_consensus3_topk_bf16(b: usize, models: usize, sel: usize, normalize: i32, lambda: f32, out: usize, n: i32): void {
  ta_consensus3_topk_impl<u16, f32>(b, models, sel, normalize, lambda, out, n);
}
/** ta_consensus3_topk_bf16 with a bf16 result (rounded as encode_bf16). */
export function ta_consensus3_topk_bf16_out(b: usize, models: usize, sel: usize, normalize: i32, lambda: f32, out: usize, n: i32): void {
  ta_consensus3_topk_impl<u16, u16>(b, models, sel, normalize, lambda, out, n);
}
export function delta_hist_hi(x: usize, b: usize, n: i32, hist: usize): void {
  delta_hist_hi_impl<f32>(x, b, n, hist);
}
export function delta_hist_hi_bf16(x: usize, b: usize, n: i32, hist: usize): void {
  delta_hist_hi_impl<u16>(x, b, n, hist);
}
export function delta_hist_lo(x: usize, b: usize, n: i32, bin: u32, lo: usize): void {
  delta_hist_lo_impl<f32>(x, b, n, bin, lo);
}
export function delta_hist_lo_bf16(x: usize, b: usize, n: i32, bin: u32, lo: usize): void {
  delta_hist_lo_impl<u16>(x, b, n, bin, lo);
}
export function delta_topk_mask(x: usize, b: usize, n: i32, key: u32, left: i32, mask: usize): i32 {
  return delta_topk_mask_impl<f32>(x, b, n, key, left, mask);
}
export function delta_topk_mask_bf16(x: usize, b: usize, n: i32, key: u32, left: i32, mask: usize): i32 {
  return delta_topk_mask_impl<u16>(x, b, n, key, left, mask);
}
export function delta_band(x: usize, b: usize, n: i32, lo: u32, hi: u32, keys: usize, cap: u32, counts: usize, pack: usize): void {
  delta_band_impl<f32>(x, b, n, lo, hi, keys, cap, counts, pack);
}
export function delta_band_bf16(x: usize, b: usize, n: i32, lo: u32, hi: u32, keys: usize, cap: u32, counts: usize, pack: usize): void {
  delta_band_impl<u16>(x, b, n, lo, hi, keys, cap, counts, pack);
}
export function delta_band3(x0: usize, x1: usize, x2: usize, b: usize, n: i32, recs: usize, pack: usize): void {
  delta_band3_impl<f32>(x0, x1, x2, b, n, recs, pack);
}
export function delta_band3_bf16(x0: usize, x1: usize, x2: usize, b: usize, n: i32, recs: usize, pack: usize): void {
  delta_band3_impl<u16>(x0, x1, x2, b, n, recs, pack);
}
export function l1_sums3(x0: usize, m0: usize, x1: usize, m1: usize, x2: usize, m2: usize, b: usize, n: i32, acc: usize): void {
  l1_sums3_impl<f32>(x0, m0, x1, m1, x2, m2, b, n, acc);
}
export function l1_sums3_bf16(x0: usize, m0: usize, x1: usize, m1: usize, x2: usize, m2: usize, b: usize, n: i32, acc: usize): void {
  l1_sums3_impl<u16>(x0, m0, x1, m1, x2, m2, b, n, acc);
}

// ---- neural-network epilogues (src/nn/kernels/conv.ts) ----

/**
 * In place over `len` floats at p (rows of n, len a multiple of n): p[r n + j] = max(p[r n + j] + bias[j], 0), the
 * bias and ReLU after a convolution's GEMM. float32 add as in JS; NaN stays NaN; a negative sum gives +0 (JS's
 * branch-free form gave -0).
 */
export function bias_relu(p: usize, bias: usize, n: i32, len: i32): void {
  const zero = f32x4.splat(0);
  for (let r = 0; r < len; r += n) {
    const row = p + (<usize>r << 2);
    let j = 0;
    for (; j + 4 <= n; j += 4) {
      const o = <usize>j << 2;
      v128.store(row + o, f32x4.max(f32x4.add(v128.load(row + o), v128.load(bias + o)), zero));
    }
    for (; j < n; j++) {
      const o = <usize>j << 2;
      store<f32>(row + o, max<f32>(load<f32>(row + o) + load<f32>(bias + o), 0));
    }
  }
}

/**
 * The winner kh * k + kw of the k x k window at `at` (rows `dh` bytes apart, columns `dw`): its first maximum in
 * row-major order (v > m, so a NaN wins only where it comes first).
 */
// @ts-ignore: decorator
@inline
function windowWinner(at: usize, dh: usize, dw: usize, k: i32): i32 {
  let m = load<f32>(at);
  let win = 0;
  for (let kh = 0; kh < k; kh++) {
    for (let kw = kh == 0 ? 1 : 0; kw < k; kw++) {
      const v = load<f32>(at + <usize>kh * dh + <usize>kw * dw);
      if (v > m) {
        m = v;
        win = kh * k + kw;
      }
    }
  }
  return win;
}

/**
 * relu(max-pool(plane) + bias) from channel planes to channels-last: src holds C planes of `stride` floats (channel c
 * at src + c * stride), each `images` blocks of HP lines of L values, of which the first H lines and W values are
 * pooled (k x k, stride k, sizes floored); dst gets [images, H / k, W / k, C]. Each window's first maximum in
 * row-major order (m = v > m ? v : m, as tfjs's cpu kernel; a NaN wins only where it comes first), then
 * max(m + bias[c], 0), which equals pooling the biased, rectified values (float addition and max are monotone)
 * unless a bias is infinite. k = 2 four windows at a time. When `codes` is not 0 it gets, laid out like dst, each
 * window's winner as a float (kh * k + kw), or -1 where the output is not positive (no gradient flows there).
 */
export function pool_planes(
  src: usize,
  stride: i32,
  C: i32,
  images: i32,
  HP: i32,
  L: i32,
  H: i32,
  W: i32,
  k: i32,
  bias: usize,
  dst: usize,
  codes: usize,
): void {
  const PH = H / k;
  const PW = W / k;
  const zero = f32x4.splat(0);
  const step = <usize>C << 2;
  for (let c = 0; c < C; c++) {
    const plane = src + ((<usize>c * <usize>stride) << 2);
    const bc = load<f32>(bias + (<usize>c << 2));
    const bv = f32x4.splat(bc);
    for (let b = 0; b < images; b++) {
      for (let py = 0; py < PH; py++) {
        const r0 = plane + ((<usize>((b * HP + py * k) * L)) << 2);
        let o = dst + ((<usize>(((b * PH + py) * PW) * C + c)) << 2);
        let px = 0;
        if (k == 2) {
          // each window's first maximum (v > m, as pmax) and which of its four it was
          let q = codes + (o - dst);
          const r1 = r0 + (<usize>L << 2);
          const none = f32x4.splat(-1);
          for (; px + 4 <= PW; px += 4) {
            const at = <usize>px << 3;
            const a0 = v128.load(r0 + at);
            const a1 = v128.load(r0 + at + 16);
            const b0 = v128.load(r1 + at);
            const b1 = v128.load(r1 + at + 16);
            let m = v128.shuffle<f32>(a0, a1, 0, 2, 4, 6);
            let w = f32x4.splat(0);
            let v = v128.shuffle<f32>(a0, a1, 1, 3, 5, 7);
            let gt = f32x4.gt(v, m);
            m = v128.bitselect(v, m, gt);
            w = v128.bitselect(f32x4.splat(1), w, gt);
            v = v128.shuffle<f32>(b0, b1, 0, 2, 4, 6);
            gt = f32x4.gt(v, m);
            m = v128.bitselect(v, m, gt);
            w = v128.bitselect(f32x4.splat(2), w, gt);
            v = v128.shuffle<f32>(b0, b1, 1, 3, 5, 7);
            gt = f32x4.gt(v, m);
            m = v128.bitselect(v, m, gt);
            w = v128.bitselect(f32x4.splat(3), w, gt);
            m = f32x4.add(m, bv);
            w = v128.bitselect(w, none, f32x4.gt(m, zero));
            m = f32x4.max(m, zero);
            store<f32>(o, f32x4.extract_lane(m, 0));
            store<f32>(o + step, f32x4.extract_lane(m, 1));
            store<f32>(o + 2 * step, f32x4.extract_lane(m, 2));
            store<f32>(o + 3 * step, f32x4.extract_lane(m, 3));
            if (codes != 0) {
              store<f32>(q, f32x4.extract_lane(w, 0));
              store<f32>(q + step, f32x4.extract_lane(w, 1));
              store<f32>(q + 2 * step, f32x4.extract_lane(w, 2));
              store<f32>(q + 3 * step, f32x4.extract_lane(w, 3));
            }
            o += 4 * step;
            q += 4 * step;
          }
        }
        for (; px < PW; px++) {
          const at = r0 + ((<usize>(px * k)) << 2);
          const win = windowWinner(at, <usize>L << 2, 4, k);
          const z = load<f32>(at + <usize>(win / k) * (<usize>L << 2) + (<usize>(win % k) << 2)) + bc;
          store<f32>(o, max<f32>(z, 0));
          if (codes != 0) store<f32>(codes + (o - dst), z > 0 ? <f32>win : -1);
          o += step;
        }
      }
    }
  }
}

/**
 * pool_planes for a channels-last src: the value of channel c at line position p (images blocks of HP lines of L
 * positions) is src[p * C + c]. Same windows, order, bias, rectification and codes as pool_planes; four channels at a
 * time, so the result is identical.
 */
export function pool_rows(
  src: usize,
  C: i32,
  images: i32,
  HP: i32,
  L: i32,
  H: i32,
  W: i32,
  k: i32,
  bias: usize,
  dst: usize,
  codes: usize,
): void {
  const PH = H / k;
  const PW = W / k;
  const zero = f32x4.splat(0);
  const none = f32x4.splat(-1);
  const pixel = <usize>C << 2;
  const line = <usize>L * pixel;
  let o = dst;
  for (let b = 0; b < images; b++) {
    for (let py = 0; py < PH; py++) {
      const r0 = src + <usize>(b * HP + py * k) * line;
      for (let px = 0; px < PW; px++, o += pixel) {
        const at = r0 + <usize>(px * k) * pixel;
        let c = 0;
        for (; c + 4 <= C; c += 4) {
          const cc = <usize>c << 2;
          let m = v128.load(at + cc);
          let w = f32x4.splat(0);
          for (let kh = 0; kh < k; kh++) {
            for (let kw = kh == 0 ? 1 : 0; kw < k; kw++) {
              const v = v128.load(at + <usize>kh * line + <usize>kw * pixel + cc);
              const gt = f32x4.gt(v, m);
              m = v128.bitselect(v, m, gt);
              w = v128.bitselect(f32x4.splat(<f32>(kh * k + kw)), w, gt);
            }
          }
          m = f32x4.add(m, v128.load(bias + cc));
          if (codes != 0) v128.store(codes + (o - dst) + cc, v128.bitselect(w, none, f32x4.gt(m, zero)));
          v128.store(o + cc, f32x4.max(m, zero));
        }
        for (; c < C; c++) {
          const cc = <usize>c << 2;
          const win = windowWinner(at + cc, line, pixel, k);
          const z = load<f32>(at + cc + <usize>(win / k) * line + <usize>(win % k) * pixel) + load<f32>(bias + cc);
          store<f32>(o + cc, max<f32>(z, 0));
          if (codes != 0) store<f32>(codes + (o - dst) + cc, z > 0 ? <f32>win : -1);
        }
      }
    }
  }
}

/** n bytes from src to dst (no overlap): inline loops for short or 16-byte-multiple runs (memory.copy calls out). */
// @ts-ignore: decorator
@inline
function copyBytes(dst: usize, src: usize, n: usize): void {
  if ((n & 15) == 0) {
    for (let i: usize = 0; i < n; i += 16) v128.store(dst + i, v128.load(src + i));
  } else if ((n & 3) == 0 && n < 256) {
    for (let i: usize = 0; i < n; i += 4) store<u32>(dst + i, load<u32>(src + i));
  } else memory.copy(dst, src, n);
}

/**
 * im2col rows r0 <= r < r1 of a convolution over NHWC x ([*, H, W, C]): row r = output pixel (b, oh, ow) in
 * row-major order gets the FH x FW x C window under it (stride sh x sw, dilation dh x dw, the input at offset
 * (top, left) of the padded grid; zeros where the window leaves the input), FH * FW * C floats per row at dst.
 */
export function im2col(
  x: usize,
  H: i32,
  W: i32,
  C: i32,
  OH: i32,
  OW: i32,
  FH: i32,
  FW: i32,
  sh: i32,
  sw: i32,
  dh: i32,
  dw: i32,
  top: i32,
  left: i32,
  r0: i32,
  r1: i32,
  dst: usize,
): void {
  const pixel = <usize>C << 2;
  const span = <usize>(FW * C) << 2;
  const per = OH * OW;
  let b = r0 / per;
  let oh = (r0 % per) / OW;
  let ow = r0 % OW;
  let o = dst;
  for (let r = r0; r < r1; r++) {
    const xb = x + ((<usize>b * <usize>H * <usize>W) << 2) * <usize>C;
    const iw0 = ow * sw - left;
    const inside = dw == 1 && iw0 >= 0 && iw0 + FW <= W;
    for (let kh = 0; kh < FH; kh++) {
      const ih = oh * sh - top + kh * dh;
      if (ih < 0 || ih >= H) {
        memory.fill(o, 0, span);
        o += span;
        continue;
      }
      const xr = xb + ((<usize>(ih * W)) << 2) * <usize>C;
      if (inside) {
        copyBytes(o, xr + <usize>iw0 * pixel, span);
        o += span;
        continue;
      }
      for (let kw = 0; kw < FW; kw++) {
        const iw = iw0 + kw * dw;
        if (iw < 0 || iw >= W) memory.fill(o, 0, pixel);
        else copyBytes(o, xr + <usize>iw * pixel, pixel);
        o += pixel;
      }
    }
    if (++ow == OW) {
      ow = 0;
      if (++oh == OH) {
        oh = 0;
        b++;
      }
    }
  }
}

/**
 * Channel planes to channels-last: src holds C planes `stride` floats apart; image b's pixel (h, w) of an H x W window
 * sits at offset (b * HE + h + top) * WE + left + w of each plane (an extended HE x WE grid). dst gets
 * [images, H, W, C]. 4 x 4 blocks (four pixels by four channels) are transposed in registers when C is a multiple of 4.
 */
export function planes_nhwc(
  src: usize,
  stride: i32,
  C: i32,
  images: i32,
  HE: i32,
  WE: i32,
  top: i32,
  left: i32,
  H: i32,
  W: i32,
  dst: usize,
): void {
  const plane = <usize>stride << 2;
  const pixel = <usize>C << 2;
  const C4 = (C & 3) == 0 ? C : 0;
  for (let b = 0; b < images; b++) {
    for (let h = 0; h < H; h++) {
      const from = src + (<usize>((b * HE + h + top) * WE + left) << 2);
      const to = dst + (<usize>((b * H + h) * W) * pixel);
      let w = 0;
      for (; w + 4 <= W && C4 != 0; w += 4) {
        const s = from + (<usize>w << 2);
        const d = to + <usize>w * pixel;
        for (let c = 0; c < C4; c += 4) {
          const p = s + <usize>c * plane;
          const r0 = v128.load(p);
          const r1 = v128.load(p + plane);
          const r2 = v128.load(p + 2 * plane);
          const r3 = v128.load(p + 3 * plane);
          // r_i = channel c + i at pixels w .. w + 3; out_j = pixel w + j at channels c .. c + 3
          const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5);
          const t1 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
          const t2 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7);
          const t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
          const q = d + (<usize>c << 2);
          v128.store(q, v128.shuffle<f32>(t0, t1, 0, 1, 4, 5));
          v128.store(q + pixel, v128.shuffle<f32>(t0, t1, 2, 3, 6, 7));
          v128.store(q + 2 * pixel, v128.shuffle<f32>(t2, t3, 0, 1, 4, 5));
          v128.store(q + 3 * pixel, v128.shuffle<f32>(t2, t3, 2, 3, 6, 7));
        }
      }
      for (; w < W; w++) {
        const s = from + (<usize>w << 2);
        const d = to + <usize>w * pixel;
        for (let c = 0; c < C; c++) store<f32>(d + (<usize>c << 2), load<f32>(s + <usize>c * plane));
      }
    }
  }
}

/**
 * relu's gradient from its output with the bias gradient: dz = dy * (y > 0) (NaN where y is NaN) for `rows` rows of
 * C values (C a multiple of 4), and each column's sum of dz added to the C doubles at acc.
 */
export function relu_grad_sums(dy: usize, y: usize, rows: i32, C: i32, dz: usize, acc: usize): void {
  const zero = f32x4.splat(0);
  const rowBytes = <usize>C << 2;
  for (let r = 0; r < rows; r++) {
    const row = (<usize>r) * rowBytes;
    for (let c: usize = 0; c < rowBytes; c += 16) {
      const o = row + c;
      const v = v128.load(y + o);
      let d = v128.and(v128.load(dy + o), f32x4.gt(v, zero));
      d = v128.bitselect(v, d, f32x4.ne(v, v));
      v128.store(dz + o, d);
      const a = acc + (c << 1);
      v128.store(a, f64x2.add(v128.load(a), f64x2.promote_low_f32x4(d)));
      v128.store(a + 16, f64x2.add(v128.load(a + 16), f64x2.promote_low_f32x4(v128.shuffle<f32>(d, d, 2, 3, 0, 1))));
    }
  }
}

/**
 * relu(conv2d(x, w) + bias) for one input channel (a first layer), stride 1, no dilation, valid padding, directly
 * (no im2col, no GEMM: K = FH * FW is too small for one to pay): x is [images, H, W], w is [FH, FW, CO] (HWIO with
 * CI = 1), CO a multiple of 4; dst gets [images, OH, OW, CO] with OH = H - FH + 1, OW = W - FW + 1. Each output
 * is bias + the taps in (kh, kw) order, then max(., 0) (NaN stays NaN). Two pixels at a time share each filter load.
 */
export function conv_c1_relu(x: usize, images: i32, H: i32, W: i32, FH: i32, FW: i32, w: usize, bias: usize, CO: i32, dst: usize): void {
  const OH = H - FH + 1;
  const OW = W - FW + 1;
  const zero = f32x4.splat(0);
  const co4 = <usize>CO << 2;
  let o = dst;
  for (let b = 0; b < images; b++) {
    const img = x + ((<usize>(b * H * W)) << 2);
    for (let oh = 0; oh < OH; oh++) {
      const row = img + ((<usize>(oh * W)) << 2);
      let ow = 0;
      for (; ow + 2 <= OW; ow += 2) {
        for (let c: usize = 0; c < co4; c += 16) {
          let a0 = v128.load(bias + c);
          let a1 = a0;
          for (let kh = 0; kh < FH; kh++) {
            const xr = row + ((<usize>(kh * W + ow)) << 2);
            const wr = w + <usize>(kh * FW) * co4 + c;
            for (let kw = 0; kw < FW; kw++) {
              const wv = v128.load(wr + <usize>kw * co4);
              const p = xr + (<usize>kw << 2);
              a0 = f32x4.add(a0, f32x4.mul(v128.load32_splat(p), wv));
              a1 = f32x4.add(a1, f32x4.mul(v128.load32_splat(p + 4), wv));
            }
          }
          v128.store(o + c, f32x4.max(a0, zero));
          v128.store(o + co4 + c, f32x4.max(a1, zero));
        }
        o += co4 << 1;
      }
      for (; ow < OW; ow++) {
        for (let c: usize = 0; c < co4; c += 16) {
          let a0 = v128.load(bias + c);
          for (let kh = 0; kh < FH; kh++) {
            const xr = row + ((<usize>(kh * W + ow)) << 2);
            const wr = w + <usize>(kh * FW) * co4 + c;
            for (let kw = 0; kw < FW; kw++) {
              a0 = f32x4.add(a0, f32x4.mul(v128.load32_splat(xr + (<usize>kw << 2)), v128.load(wr + <usize>kw * co4)));
            }
          }
          v128.store(o + c, f32x4.max(a0, zero));
        }
        o += co4;
      }
    }
  }
}

/**
 * The filter gradient of a 3 x 3, single-input-channel, stride-1, undilated, valid convolution over rows
 * r0 <= r < r1 of its output (r = (b, oh, ow) row-major, OH x OW per image): acc[(kh * 3 + kw) * CO + co] +=
 * x[b, oh + kh, ow + kw] * dz[r, co], with x [*, H, W] and dz pointing at row r0 (CO a multiple of 4). Four
 * channels at a time over every row, the nine taps' sums in registers (a GEMM with K = 9 would mostly move data).
 */
export function filter_grad_c1_3x3(x: usize, H: i32, W: i32, OH: i32, OW: i32, dz: usize, CO: i32, r0: i32, r1: i32, acc: usize): void {
  const co4 = <usize>CO << 2;
  const w4 = <usize>W << 2;
  for (let c: usize = 0; c < co4; c += 16) {
    let s0 = f32x4.splat(0);
    let s1 = s0;
    let s2 = s0;
    let s3 = s0;
    let s4 = s0;
    let s5 = s0;
    let s6 = s0;
    let s7 = s0;
    let s8 = s0;
    let b = r0 / (OH * OW);
    let rem = r0 - b * OH * OW;
    let oh = rem / OW;
    let ow = rem - oh * OW;
    let d = dz + c;
    for (let r = r0; r < r1; r++) {
      const g = v128.load(d);
      const p = x + ((<usize>((b * H + oh) * W + ow)) << 2);
      s0 = f32x4.add(s0, f32x4.mul(v128.load32_splat(p), g));
      s1 = f32x4.add(s1, f32x4.mul(v128.load32_splat(p + 4), g));
      s2 = f32x4.add(s2, f32x4.mul(v128.load32_splat(p + 8), g));
      s3 = f32x4.add(s3, f32x4.mul(v128.load32_splat(p + w4), g));
      s4 = f32x4.add(s4, f32x4.mul(v128.load32_splat(p + w4 + 4), g));
      s5 = f32x4.add(s5, f32x4.mul(v128.load32_splat(p + w4 + 8), g));
      s6 = f32x4.add(s6, f32x4.mul(v128.load32_splat(p + 2 * w4), g));
      s7 = f32x4.add(s7, f32x4.mul(v128.load32_splat(p + 2 * w4 + 4), g));
      s8 = f32x4.add(s8, f32x4.mul(v128.load32_splat(p + 2 * w4 + 8), g));
      d += co4;
      if (++ow == OW) {
        ow = 0;
        if (++oh == OH) {
          oh = 0;
          b++;
        }
      }
    }
    v128.store(acc + c, f32x4.add(v128.load(acc + c), s0));
    v128.store(acc + co4 + c, f32x4.add(v128.load(acc + co4 + c), s1));
    v128.store(acc + 2 * co4 + c, f32x4.add(v128.load(acc + 2 * co4 + c), s2));
    v128.store(acc + 3 * co4 + c, f32x4.add(v128.load(acc + 3 * co4 + c), s3));
    v128.store(acc + 4 * co4 + c, f32x4.add(v128.load(acc + 4 * co4 + c), s4));
    v128.store(acc + 5 * co4 + c, f32x4.add(v128.load(acc + 5 * co4 + c), s5));
    v128.store(acc + 6 * co4 + c, f32x4.add(v128.load(acc + 6 * co4 + c), s6));
    v128.store(acc + 7 * co4 + c, f32x4.add(v128.load(acc + 7 * co4 + c), s7));
    v128.store(acc + 8 * co4 + c, f32x4.add(v128.load(acc + 8 * co4 + c), s8));
  }
}

/**
 * The gradient through a 2 x 2 max-pool with relu (conv-pool's backward): g and codes are [images, PH, PW, C] (codes
 * the forward's window winners 0..3, or -1), dz gets [images, 2 PH, 2 PW, C] with dz = g * (code == position) at each
 * window position (so -0 and NaN as the float products give them), and acc (C doubles) += g * (code >= 0) per
 * channel in row-major order. C a multiple of 4. The same arithmetic as conv-pool.ts's JS loop, bit for bit.
 */
export function pool2_grad(g: usize, codes: usize, images: i32, PH: i32, PW: i32, C: i32, dz: usize, acc: usize): void {
  const c4 = <usize>C << 2;
  const row = (<usize>(2 * PW)) * c4;
  const one = f32x4.splat(1);
  const zero = f32x4.splat(0);
  const k1 = f32x4.splat(1);
  const k2 = f32x4.splat(2);
  const k3 = f32x4.splat(3);
  let o: usize = 0;
  let p = dz;
  for (let r = 0; r < images * PH; r++) {
    for (let px = 0; px < PW; px++) {
      for (let c: usize = 0; c < c4; c += 16) {
        const d = v128.load(g + o + c);
        const w = v128.load(codes + o + c);
        const q = p + c;
        v128.store(q, f32x4.mul(d, v128.and(f32x4.eq(w, zero), one)));
        v128.store(q + c4, f32x4.mul(d, v128.and(f32x4.eq(w, k1), one)));
        v128.store(q + row, f32x4.mul(d, v128.and(f32x4.eq(w, k2), one)));
        v128.store(q + row + c4, f32x4.mul(d, v128.and(f32x4.eq(w, k3), one)));
        const s = f32x4.mul(d, v128.and(f32x4.ge(w, zero), one));
        const a = acc + (c << 1);
        v128.store(a, f64x2.add(v128.load(a), f64x2.promote_low_f32x4(s)));
        v128.store(a + 16, f64x2.add(v128.load(a + 16), f64x2.promote_low_f32x4(v128.shuffle<f32>(s, s, 2, 3, 0, 1))));
      }
      o += c4;
      p += c4 << 1;
    }
    p += row; // the window's second row was written with the first
  }
}
