// Numeric kernels for merging: float64-accumulated reductions, magnitude selection by radix histograms,
// ranks within lines, and a keyed counter-based hash for reproducible Bernoulli masks.
//
// Magnitudes are compared through their float32 bit patterns: for |x| (sign bit cleared) the unsigned bit
// pattern orders exactly like the value (+0 < subnormals < normals < +inf < NaN), so selecting the k-th
// largest magnitude is a radix select over 31-bit integer keys: two histogram passes, no sort, no copy.

/** The 31-bit magnitude keys of a float32 array, as a view over the same memory (no copy). */
export function bitsView(values: Float32Array): Uint32Array {
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}

/** Sum of x[i] * y[i] in float64. */
export function dot(x: Float32Array, y: Float32Array): number {
  let s = 0;
  const n = x.length;
  for (let i = 0; i < n; i++) s += x[i]! * y[i]!;
  return s;
}

/** Sum of squares in float64. */
export function sumSquares(x: Float32Array): number {
  let s = 0;
  const n = x.length;
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    s += v * v;
  }
  return s;
}

/**
 * acc[0] += x . x, acc[1] += y . y, acc[2] += x . y in float64, each in index order (as sumSquares and dot add
 * them), so that sums over consecutive chunks equal the sums over the whole arrays.
 */
export function addGram2(x: Float32Array, y: Float32Array, acc: Float64Array): void {
  let xx = acc[0]!;
  let yy = acc[1]!;
  let xy = acc[2]!;
  const n = x.length;
  for (let i = 0; i < n; i++) {
    const u = x[i]!;
    const v = y[i]!;
    xx += u * u;
    yy += v * v;
    xy += u * v;
  }
  acc[0] = xx;
  acc[1] = yy;
  acc[2] = xy;
}

/** addGram2 over the task vectors fround(x - b) and fround(y - b) (its own loop: a branch in one ran slower). */
export function addGram2Delta(x: Float32Array, y: Float32Array, b: Float32Array, acc: Float64Array): void {
  let xx = acc[0]!;
  let yy = acc[1]!;
  let xy = acc[2]!;
  const n = x.length;
  for (let i = 0; i < n; i++) {
    const u = Math.fround(x[i]! - b[i]!);
    const v = Math.fround(y[i]! - b[i]!);
    xx += u * u;
    yy += v * v;
    xy += u * v;
  }
  acc[0] = xx;
  acc[1] = yy;
  acc[2] = xy;
}

/** Sum of |x| in float64. */
export function sumAbs(x: Float32Array): number {
  let s = 0;
  const n = x.length;
  for (let i = 0; i < n; i++) s += Math.abs(x[i]!);
  return s;
}

/** max |x| (0 for an empty array; NaN if any element is NaN). */
export function maxAbs(x: Float32Array): number {
  let m = 0;
  const n = x.length;
  for (let i = 0; i < n; i++) {
    const a = Math.abs(x[i]!);
    if (a > m || Number.isNaN(a)) m = a;
  }
  return m;
}

/** Result of {@link magnitudeAt}: the magnitude key at a sorted position and how many keys are strictly smaller. */
export interface KeyAt {
  /** The 31-bit magnitude key (float32 bits of |x|) at the requested ascending position. */
  key: number;
  /** Number of elements whose magnitude key is strictly smaller than `key`. */
  below: number;
  /** Number of elements whose magnitude key equals `key`. */
  equal: number;
}

/**
 * Streaming form of {@link magnitudeAt}: the magnitude key at ascending position `pos` among values seen in two
 * passes over the same data (chunks in any split): `countHigh` every chunk, `settleHigh`, `countLow` every chunk,
 * then `result`. A two-level radix select (15 high bits, then 16 low bits) with no copy of the data.
 */
export class MagnitudeSelect {
  private readonly hi = new Uint32Array(1 << 15);
  private lo: Uint32Array | undefined;
  private bin = -1;
  private below = 0;

  constructor(private readonly pos: number) {}

  countHigh(values: Float32Array): void {
    const bits = bitsView(values);
    const hi = this.hi;
    const n = bits.length;
    for (let i = 0; i < n; i++) hi[(bits[i]! & 0x7fffffff) >>> 16]!++;
  }

  settleHigh(): void {
    let below = 0;
    let b = 0;
    for (; b < this.hi.length; b++) {
      const c = this.hi[b]!;
      if (below + c > this.pos) break;
      below += c;
    }
    this.bin = b;
    this.below = below;
    this.lo = new Uint32Array(1 << 16);
  }

  countLow(values: Float32Array): void {
    const bits = bitsView(values);
    const lo = this.lo!;
    const bin = this.bin;
    const n = bits.length;
    for (let i = 0; i < n; i++) {
      const k = bits[i]! & 0x7fffffff;
      if (k >>> 16 === bin) lo[k & 0xffff]!++;
    }
  }

  result(): KeyAt {
    const lo = this.lo!;
    let below = this.below;
    let l = 0;
    for (; l < lo.length; l++) {
      const c = lo[l]!;
      if (below + c > this.pos) break;
      below += c;
    }
    return { key: ((this.bin << 16) | l) >>> 0, below, equal: lo[l]! };
  }
}

/**
 * The magnitude key found at ascending sorted position `pos` (0-based) of |values|, by a two-level radix
 * select (15 high bits, then 16 low bits). Requires 0 <= pos < values.length.
 */
export function magnitudeAt(values: Float32Array, pos: number): KeyAt {
  const n = values.length;
  if (!(pos >= 0 && pos < n)) throw new RangeError(`magnitudeAt: position ${pos} outside [0, ${n})`);
  const sel = new MagnitudeSelect(pos);
  sel.countHigh(values);
  sel.settleHigh();
  sel.countLow(values);
  return sel.result();
}

/**
 * One chunk of a top-k keep-mask, in index order: 1 where |x| > key, plus the first `tie.left` entries equal to
 * key (the lower indices win, as in a stable descending sort); `tie.left` counts down across chunks.
 */
export function topKMaskChunk(values: Float32Array, key: number, tie: { left: number }, out: Uint8Array): Uint8Array {
  const bits = bitsView(values);
  const n = bits.length;
  for (let i = 0; i < n; i++) out[i] = +((bits[i]! & 0x7fffffff) > key);
  for (let i = 0; tie.left > 0 && i < n; i++) {
    if ((bits[i]! & 0x7fffffff) === key) {
      out[i] = 1;
      tie.left--;
    }
  }
  return out;
}

/**
 * Keep-mask over sorted positions [from, to) of |values| in ascending order, where equal magnitudes are
 * ordered by index (the order of a stable ascending sort): out[i] = 1 if element i lands in that window.
 * Runs in three passes over the data whatever the window.
 */
export function magnitudeWindowMask(values: Float32Array, from: number, to: number, out: Uint8Array): Uint8Array {
  const n = values.length;
  if (out.length !== n) throw new RangeError(`magnitudeWindowMask: mask has ${out.length} elements, need ${n}`);
  from = Math.max(0, from);
  to = Math.min(n, to);
  if (from >= to) return out.fill(0);
  if (from === 0 && to === n) return out.fill(1);
  const bits = bitsView(values);
  // Smallest kept key and its tie group start; largest kept key and its tie group start.
  const lo = from === 0 ? { key: -1, below: 0 } : magnitudeAt(values, from);
  const hi = to === n ? { key: 0x80000000, below: n } : magnitudeAt(values, to - 1);
  const loKey = lo.key;
  const hiKey = hi.key;
  let posLo = lo.below; // sorted position of the next element equal to loKey (index order)
  let posHi = hi.below; // same for hiKey
  for (let i = 0; i < n; i++) {
    const k = bits[i]! & 0x7fffffff;
    if (k > loKey && k < hiKey) out[i] = 1;
    else if (k === loKey) {
      const p = posLo++;
      if (k === hiKey) posHi++;
      out[i] = p >= from && p < to ? 1 : 0;
    } else if (k === hiKey) {
      const p = posHi++;
      out[i] = p < to ? 1 : 0;
    } else out[i] = 0;
  }
  return out;
}

/**
 * Keep-mask of the k largest |values|; among equal magnitudes at the boundary the lower indices win (the order
 * of a stable descending sort). k <= 0 keeps nothing, k >= n keeps everything.
 */
export function topKMagnitudeMask(values: Float32Array, k: number, out: Uint8Array): Uint8Array {
  const n = values.length;
  if (out.length !== n) throw new RangeError(`topKMagnitudeMask: mask has ${out.length} elements, need ${n}`);
  if (k <= 0) return out.fill(0);
  if (k >= n) return out.fill(1);
  const t = magnitudeAt(values, n - k);
  // Everything above the threshold key is kept, plus the first `take` (in index order) of those equal to it.
  return topKMaskChunk(values, t.key, { left: k - (n - t.below - t.equal) }, out);
}

/**
 * Normalised ranks of |values| along axis 1 of a tensor seen as [outer, len, inner] (a 1-D tensor is one line):
 * out[i] = rank / (len - 1), rank 0 for the smallest magnitude of its line, ties ordered by position in the line
 * (stable). A line of length 1 gets 0.5.
 */
export function lineRankNorm(
  values: Float32Array,
  outer: number,
  len: number,
  inner: number,
  out: Float32Array,
): Float32Array {
  const n = values.length;
  if (outer * len * inner !== n || out.length !== n) throw new RangeError("lineRankNorm: layout does not match");
  const bits = bitsView(values);
  if (len === 1) return out.fill(0.5);
  const denom = len - 1;
  if (len < RADIX_MIN_LEN) {
    // Short lines: pack (31-bit key, position) into one float64 (exact: < 2^31 * 2^8) and sort natively.
    const packed = new Float64Array(len);
    for (let o = 0; o < outer; o++) {
      for (let c = 0; c < inner; c++) {
        const start = o * len * inner + c;
        for (let r = 0; r < len; r++) packed[r] = (bits[start + r * inner]! & 0x7fffffff) * 256 + r;
        packed.sort();
        for (let s = 0; s < len; s++) out[start + (packed[s]! % 256) * inner] = s / denom;
      }
    }
    return out;
  }
  // Long lines: stable LSD radix sort of (key, position) in three 11-bit digits.
  const keyA = new Uint32Array(len);
  const keyB = new Uint32Array(len);
  const posA = new Uint32Array(len);
  const posB = new Uint32Array(len);
  const hist = new Uint32Array(2048);
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < inner; c++) {
      const start = o * len * inner + c;
      let kIn = keyA;
      let pIn = posA;
      let kOut = keyB;
      let pOut = posB;
      for (let r = 0; r < len; r++) {
        kIn[r] = bits[start + r * inner]! & 0x7fffffff;
        pIn[r] = r;
      }
      for (let shift = 0; shift < 31; shift += 11) {
        hist.fill(0);
        for (let r = 0; r < len; r++) hist[(kIn[r]! >>> shift) & 2047]!++;
        if (hist[(kIn[0]! >>> shift) & 2047] === len) continue; // every key shares this digit
        let sum = 0;
        for (let d = 0; d < 2048; d++) {
          const h = hist[d]!;
          hist[d] = sum;
          sum += h;
        }
        for (let r = 0; r < len; r++) {
          const k = kIn[r]!;
          const dst = hist[(k >>> shift) & 2047]!++;
          kOut[dst] = k;
          pOut[dst] = pIn[r]!;
        }
        [kIn, kOut] = [kOut, kIn];
        [pIn, pOut] = [pOut, pIn];
      }
      for (let s = 0; s < len; s++) out[start + pIn[s]! * inner] = s / denom;
    }
  }
  return out;
}

/** Lines at least this long are ranked by radix sort; shorter ones by a native sort of packed keys. */
const RADIX_MIN_LEN = 256;

// ---- keyed counter-based hash (reproducible uniform numbers) ----

/** A strong 32-bit integer mixer (bijective; "lowbias32" constants from the hash-prospector search). */
export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** 32-bit hash of a string's UTF-16 code units, with a seed (FNV-1a steps, then a final mix). */
export function hashString32(s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return mix32(h ^ s.length);
}

/** A 64-bit key as two 32-bit halves. */
export interface Key64 {
  k0: number;
  k1: number;
}

/** Keys of the fine stream: the low 24 bits of a draw, which decide a Bernoulli draw only on a tie of the top byte. */
const FINE_K0 = 0x5bd1e995;
const FINE_K1 = 0x27d4eb2f;

/** The top byte of draw `lo` (within one 2^32 block of counters, block key k1): one hash word serves four draws. */
function coarseByte(k0: number, k1: number, lo: number): number {
  return (mix32(mix32(((lo >>> 2) + k0) >>> 0) ^ k1) >>> ((lo & 3) << 3)) & 255;
}

/** The low 24 bits of draw `lo` (as coarseByte). */
function fineBits(k0: number, k1: number, lo: number): number {
  return mix32(mix32((lo + (k0 ^ FINE_K0)) >>> 0) ^ (k1 ^ FINE_K1)) >>> 8;
}

/**
 * The uniform 32-bit value number `counter` of the stream `key`: a pure function of (key, counter), so any
 * element can be drawn independently of every other (no sequential state, no dependence on chunking/threads).
 * The top byte comes from one hash word per four consecutive counters, the low 24 bits from a second keyed stream,
 * so a Bernoulli draw (value < threshold) mostly needs a quarter of a hash: the low bits matter only when the top
 * byte equals the threshold's.
 */
export function keyedU32(key: Key64, counter: number): number {
  const lo = counter >>> 0;
  const k1 = (key.k1 + Math.imul(Math.floor(counter / 4294967296), 0x9e3779b9)) >>> 0;
  return ((coarseByte(key.k0, k1, lo) << 24) | fineBits(key.k0, k1, lo)) >>> 0;
}

/**
 * Bernoulli draws: out[i] = 1 iff keyedU32(key, offset + i) < p * 2^32 (p a constant, or probs[i]), so p <= 0 never
 * keeps and p >= 1 always keeps.
 */
export function bernoulliFill(key: Key64, p: number | Float32Array, out: Uint8Array, offset = 0): Uint8Array {
  const n = out.length;
  if (typeof p !== "number" && p.length !== n) {
    throw new RangeError(`bernoulliFill: ${p.length} probabilities for ${n} draws`);
  }
  const k0 = key.k0;
  // value < p 2^32 for an integer value is value < ceil(p 2^32): the constant's threshold, split into its top byte
  // and low 24 bits.
  const threshold = typeof p !== "number" ? 0 : p >= 1 ? 4294967296 : p <= 0 ? 0 : Math.ceil(p * 4294967296);
  const top = Math.floor(threshold / 16777216);
  const fine = threshold % 16777216;
  // Split the range where the counter's high word changes (at multiples of 2^32), so the loops see one k1.
  let i = 0;
  while (i < n) {
    const c = offset + i;
    const hi = Math.floor(c / 4294967296);
    const end = Math.min(n, (hi + 1) * 4294967296 - offset);
    const k1 = (key.k1 + Math.imul(hi, 0x9e3779b9)) >>> 0;
    let lo = c >>> 0;
    if (typeof p === "number") {
      let word = mix32(mix32(((lo >>> 2) + k0) >>> 0) ^ k1) >>> ((lo & 3) << 3);
      for (; i < end; i++, lo++) {
        if ((lo & 3) === 0) word = mix32(mix32(((lo >>> 2) + k0) >>> 0) ^ k1);
        const b = word & 255;
        word >>>= 8;
        // +(a < b) instead of a ternary: the outcome is random, so a branch would mispredict half the time.
        out[i] = b === top ? +(fine !== 0 && fineBits(k0, k1, lo) < fine) : +(b < top);
      }
    } else {
      for (; i < end; i++, lo++) {
        const base = coarseByte(k0, k1, lo) * 16777216;
        const t = p[i]! * 4294967296;
        out[i] = base + 16777216 <= t ? 1 : base >= t ? 0 : +(base + fineBits(k0, k1, lo) < t);
      }
    }
  }
  return out;
}
