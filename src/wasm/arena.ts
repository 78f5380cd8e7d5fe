// The WebAssembly SIMD kernels (wasm/kernels.ts, embedded in kernels.wasm.ts) and the linear memory they work
// in. One instance per thread (each worker loads its own). Buffers are bump-allocated in the arena and handed
// out as offsets; typed-array views are made on demand, because growing the memory detaches every earlier view:
// take views only after the allocations of a step, never hold one across `alloc`.
//
// Disabled (every caller takes its pure-JS path) when FUSIONKIT_NO_WASM=1 or WebAssembly SIMD is unavailable.

import { f16Table32 } from "../tensor/float16.js";
import { KERNELS_WASM_BASE64 } from "./kernels.wasm.js";
import { nativeKernels } from "./native.js";

/** delta_band's signature (float32 and bf16 inputs alike): see wasm/kernels.ts. */
type DeltaBand = (
  x: number,
  b: number,
  n: number,
  lo: number,
  hi: number,
  keys: number,
  cap: number,
  counts: number,
  pack: number,
) => void;

/** delta_band3's signature: three models against one base, per-model records at `recs` (see wasm/kernels.ts). */
type DeltaBand3 = (x0: number, x1: number, x2: number, b: number, n: number, recs: number, pack: number) => void;

/** ta_sum3's signature (float32 / bf16 inputs, float32 / bf16 output alike). */
type TaSum3 = (
  b: number,
  models: number,
  normalize: number,
  divisor: number,
  lambda: number,
  out: number,
  n: number,
) => void;

/** ta_consensus3's signature (float32 / bf16 inputs, float32 / bf16 output alike). */
type Consensus3 = (b: number, models: number, normalize: number, lambda: number, out: number, n: number) => void;

/** ta_consensus3_topk's signature (float32 and bf16 inputs alike). */
type Consensus3TopK = (
  b: number,
  models: number,
  sel: number,
  normalize: number,
  lambda: number,
  out: number,
  n: number,
) => void;

/** The kernel exports; pointers are byte offsets into the arena's memory. See wasm/kernels.ts for semantics. */
export interface KernelExports {
  decode_bf16(src: number, dst: number, n: number): void;
  decode_f16(src: number, dst: number, n: number, table: number): void;
  round_bf16(p: number, n: number): void;
  encode_bf16(src: number, dst: number, n: number): void;
  linear(xs: number, ws: number, k: number, d: number, out: number, n: number): void;
  ta_sum(
    b: number,
    models: number,
    k: number,
    normalize: number,
    divisor: number,
    lambda: number,
    out: number,
    n: number,
  ): void;
  ta_consensus(
    b: number,
    models: number,
    k: number,
    normalize: number,
    lambda: number,
    out: number,
    n: number,
    vs: number,
  ): void;
  ta_sum3: TaSum3;
  ta_sum3_bf16: TaSum3;
  ta_sum3_bf16_out: TaSum3;
  ta_consensus3: Consensus3;
  pack_bits(src: number, dst: number, n: number): void;
  unpack_bits(src: number, dst: number, n: number): void;
  linear_bf16(xs: number, ws: number, k: number, d: number, out: number, n: number): void;
  bias_relu(p: number, bias: number, n: number, len: number): void;
  pool2_grad(
    g: number,
    codes: number,
    images: number,
    PH: number,
    PW: number,
    C: number,
    dz: number,
    acc: number,
  ): void;
  filter_grad_c1_3x3(
    x: number,
    H: number,
    W: number,
    OH: number,
    OW: number,
    dz: number,
    CO: number,
    r0: number,
    r1: number,
    acc: number,
  ): void;
  conv_c1_relu(
    x: number,
    images: number,
    H: number,
    W: number,
    FH: number,
    FW: number,
    w: number,
    bias: number,
    CO: number,
    dst: number,
  ): void;
  pool_planes(
    src: number,
    stride: number,
    C: number,
    images: number,
    HP: number,
    L: number,
    H: number,
    W: number,
    k: number,
    bias: number,
    dst: number,
    codes: number,
  ): void;
  pool_rows(
    src: number,
    C: number,
    images: number,
    HP: number,
    L: number,
    H: number,
    W: number,
    k: number,
    bias: number,
    dst: number,
    codes: number,
  ): void;
  delta_hist_hi(x: number, b: number, n: number, hist: number): void;
  delta_hist_lo(x: number, b: number, n: number, bin: number, lo: number): void;
  delta_topk_mask(x: number, b: number, n: number, key: number, left: number, mask: number): number;
  bernoulli(k0: number, k1: number, lo: number, threshold: number, mask: number, n: number): void;
  ta_consensus3_bf16: Consensus3;
  ta_consensus3_bf16_out: Consensus3;
  delta_hist_hi_bf16(x: number, b: number, n: number, hist: number): void;
  delta_hist_lo_bf16(x: number, b: number, n: number, bin: number, lo: number): void;
  delta_topk_mask_bf16(x: number, b: number, n: number, key: number, left: number, mask: number): number;
  ta_consensus3_topk: Consensus3TopK;
  ta_consensus3_topk_bf16: Consensus3TopK;
  ta_consensus3_topk_bf16_out: Consensus3TopK;
  keys_hist_hi(keys: number, n: number, hist: number): void;
  keys_hist_lo(keys: number, n: number, bin: number, lo: number): void;
  delta_band: DeltaBand;
  delta_band_bf16: DeltaBand;
  delta_band3: DeltaBand3;
  delta_band3_bf16: DeltaBand3;
  l1_sums3_bf16(
    x0: number,
    m0: number,
    x1: number,
    m1: number,
    x2: number,
    m2: number,
    b: number,
    n: number,
    acc: number,
  ): void;
  im2col(
    x: number,
    H: number,
    W: number,
    C: number,
    OH: number,
    OW: number,
    FH: number,
    FW: number,
    sh: number,
    sw: number,
    dh: number,
    dw: number,
    top: number,
    left: number,
    r0: number,
    r1: number,
    dst: number,
  ): void;
  planes_nhwc(
    src: number,
    stride: number,
    C: number,
    images: number,
    HE: number,
    WE: number,
    top: number,
    left: number,
    H: number,
    W: number,
    dst: number,
  ): void;
  relu_grad_sums(dy: number, y: number, rows: number, C: number, dz: number, acc: number): void;
  l1_sums3(
    x0: number,
    m0: number,
    x1: number,
    m1: number,
    x2: number,
    m2: number,
    b: number,
    n: number,
    acc: number,
  ): void;
}

// The few WebAssembly APIs used here (the project's lib settings include no DOM / WebAssembly typings).
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
type WasmModule = object;
interface WasmApi {
  Memory: new (d: { initial: number }) => WasmMemory;
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (m: WasmModule, imports: object) => { exports: object };
}
const WA = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

const PAGE = 65536;
/** Small fixed scratch for per-call tables (model records, vote rows), below the bump region. */
const SCRATCH = 4096;
const SCRATCH_BYTES = 60 * 1024;
/** Most models a kernel call takes (model records and vote rows must fit the scratch area). */
export const WASM_MAX_MODELS = 512;
const ALIGN = 64;

export class WasmArena {
  readonly memory: WasmMemory;
  /** The kernels (native stand-ins where they load; see withNative). */
  readonly k: KernelExports;
  /** The wasm kernels alone (to compare the native ones against). */
  readonly wasm: KernelExports;
  /** The f16 -> f32 table for decode_f16. */
  readonly f16Table: number;
  /**
   * 16 byte shuffles for i8x16.swizzle, one per 4-bit lane mask: the masked 32-bit lanes moved to the front in
   * order (delta_band's compaction).
   */
  readonly packTable: number;
  private top: number;

  constructor(wa: WasmApi, module: WasmModule) {
    this.memory = new wa.Memory({ initial: 8 });
    const instance = new wa.Instance(module, { env: { memory: this.memory } });
    this.wasm = instance.exports as unknown as KernelExports;
    this.k = withNative(this.wasm, this.memory);
    this.top = SCRATCH + SCRATCH_BYTES;
    this.f16Table = this.alloc(65536 * 4);
    // Element by element, as decodeToF32's table loop reads it (which quiets the signalling NaNs).
    const table = f16Table32();
    const dst = this.f32(this.f16Table, 65536);
    for (let i = 0; i < 65536; i++) dst[i] = table[i]!;
    this.packTable = this.alloc(256);
    const pack = this.u8(this.packTable, 256).fill(0x80); // out-of-range indices select 0
    for (let mask = 0; mask < 16; mask++) {
      let to = 0;
      for (let lane = 0; lane < 4; lane++) {
        if (((mask >> lane) & 1) === 0) continue;
        for (let byte = 0; byte < 4; byte++) pack[16 * mask + 4 * to + byte] = 4 * lane + byte;
        to++;
      }
    }
  }

  /** `bytes` of arena memory, 64-byte aligned; grows the memory (detaching earlier views) when needed. */
  alloc(bytes: number): number {
    const p = this.top;
    const end = p + Math.ceil(bytes / ALIGN) * ALIGN;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      this.memory.grow(Math.ceil((end - have) / PAGE));
      // First-touch the new pages from JavaScript. Pages the kernel faults in itself (a positional read straight
      // into fresh arena memory) made every later kernel pass over them slower on these VMs: the TIES band pass
      // 1.46-1.92 -> 1.07-1.41 s and the combine 2.71-3.59 -> 2.57-3.22 s over the bench's merge (-j 1, 3 pairs).
      new Uint8Array(this.memory.buffer, have).fill(0);
    }
    this.top = end;
    return p;
  }

  /** The current top, to hand to `release` when a step's buffers are no longer needed. */
  mark(): number {
    return this.top;
  }

  release(mark: number): void {
    this.top = mark;
  }

  /** Start of the small per-call scratch area (SCRATCH_BYTES). */
  get scratch(): number {
    return SCRATCH;
  }

  f32(p: number, n: number): Float32Array {
    return new Float32Array(this.memory.buffer, p, n);
  }

  u8(p: number, n: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, p, n);
  }

  u16(p: number, n: number): Uint16Array {
    return new Uint16Array(this.memory.buffer, p, n);
  }

  u32(p: number, n: number): Uint32Array {
    return new Uint32Array(this.memory.buffer, p, n);
  }

  i32(p: number, n: number): Int32Array {
    return new Int32Array(this.memory.buffer, p, n);
  }

  f64(p: number, n: number): Float64Array {
    return new Float64Array(this.memory.buffer, p, n);
  }

  /** Whether `a` is a view into this arena's memory (so kernels can take it by pointer). */
  owns(a: ArrayBufferView): boolean {
    return a.buffer === this.memory.buffer;
  }

  /** Writes k model records { x, keep (0 = all), scale, w } at the scratch area; returns the table's pointer. */
  modelTable(
    xs: readonly Float32Array[],
    keeps: readonly (Uint8Array | null)[],
    scales: readonly number[],
    w: readonly number[],
  ): number {
    const k = xs.length;
    const u = this.u32(SCRATCH, 4 * k);
    const f = this.f32(SCRATCH, 4 * k);
    for (let i = 0; i < k; i++) {
      u[4 * i] = xs[i]!.byteOffset;
      u[4 * i + 1] = keeps[i]?.byteOffset ?? 0;
      f[4 * i + 2] = scales[i]!;
      f[4 * i + 3] = w[i]!;
    }
    return SCRATCH;
  }
}

/** The kernels, with the native stand-ins (src/wasm/native.ts) in place of their wasm namesakes where they load. */
function withNative(wasm: KernelExports, memory: WasmMemory): KernelExports {
  const native = nativeKernels();
  if (native === null) return wasm;
  return {
    ...wasm,
    ta_consensus3_topk_bf16_out: (b, models, sel, normalize, lambda, out, n) =>
      native.ta_consensus3_topk_bf16_out(memory.buffer, b, models, sel, normalize, lambda, out, n),
    delta_band3_bf16: (x0, x1, x2, b, n, recs) => native.delta_band3_bf16(memory.buffer, x0, x1, x2, b, n, recs),
    ta_consensus3_bf16_out: (b, models, normalize, lambda, out, n) =>
      native.ta_consensus3_bf16_out(memory.buffer, b, models, normalize, lambda, out, n),
    l1_sums3_bf16: (x0, m0, x1, m1, x2, m2, b, n, acc) =>
      native.l1_sums3_bf16(memory.buffer, x0, m0, x1, m1, x2, m2, b, n, acc),
    bernoulli: (k0, k1, lo, threshold, mask, n) => native.bernoulli(memory.buffer, k0, k1, lo, threshold, mask, n),
  };
}

let compiled: WasmModule | null | undefined;

let arena: WasmArena | undefined;

/** This thread's arena, or null when WebAssembly SIMD is unavailable or FUSIONKIT_NO_WASM=1. */
export function wasmArena(): WasmArena | null {
  if (process.env.FUSIONKIT_NO_WASM === "1") return null;
  if (arena !== undefined) return arena;
  if (compiled === undefined) {
    try {
      if (WA === undefined) throw new Error("no WebAssembly");
      compiled = new WA.Module(Buffer.from(KERNELS_WASM_BASE64, "base64"));
    } catch {
      compiled = null; // no WebAssembly, or no SIMD support
    }
  }
  if (compiled === null) return null;
  arena = new WasmArena(WA!, compiled);
  return arena;
}

/**
 * Let this thread's arena (and its memory, which WebAssembly cannot shrink) be collected; the next wasmArena()
 * makes a fresh one. For long-lived processes after a merge; views into the old memory stay valid but no longer
 * count as wasm-resident.
 */
export function releaseWasmArena(): void {
  arena = undefined;
}

/** The arena when every array lives in it (so a kernel can run on them in place), else null. */
export function wasmFor(...arrays: readonly (ArrayBufferView | null | undefined)[]): WasmArena | null {
  const a = arena;
  if (a === undefined || process.env.FUSIONKIT_NO_WASM === "1") return null;
  for (const x of arrays) if (x != null && x.buffer !== a.memory.buffer) return null;
  return a;
}
