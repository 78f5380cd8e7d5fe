/**
 * Output-buffer pool for the fusionkit backend. Touching freshly allocated memory costs ~0.3-0.7 GB/s on small VMs,
 * so kernels draw Float32Arrays from here and the backend hands them back when the last tensor that stores them (or a
 * view of them) is disposed. Only buffers this pool allocated are ever recycled, and a buffer whose contents escaped to
 * user code (`dataSync`, `data`) is forgotten, never reused: pooling cannot change what a caller sees.
 */

interface Owned {
  array: Float32Array;
  refs: number;
}

export class BufferPool {
  private readonly free = new Map<number, Float32Array[]>();
  private readonly owned = new Map<ArrayBufferLike, Owned>();
  private freeBytes = 0;

  constructor(private readonly maxFreeBytes = 512 * 1024 * 1024) {}

  /** A Float32Array of exactly n elements with arbitrary contents (recycled when one is free). */
  alloc(n: number): Float32Array {
    const list = this.free.get(n);
    let array = list?.pop();
    if (array === undefined) array = new Float32Array(n);
    else this.freeBytes -= array.byteLength;
    this.owned.set(array.buffer, { array, refs: 0 });
    return array;
  }

  /** A zero-filled Float32Array of n elements. */
  zeros(n: number): Float32Array {
    return this.alloc(n).fill(0);
  }

  /** A tensor now stores `values` (or a view of a pooled buffer): count the reference. */
  ref(values: unknown): void {
    if (!(values instanceof Float32Array)) return;
    const owned = this.owned.get(values.buffer);
    if (owned !== undefined) owned.refs++;
  }

  /** A tensor that stored `values` was disposed: recycle the buffer once nothing refers to it. */
  unref(values: unknown): void {
    if (!(values instanceof Float32Array)) return;
    const owned = this.owned.get(values.buffer);
    if (owned === undefined) return;
    if (--owned.refs <= 0) this.recycle(owned.array);
  }

  /** Scratch memory a kernel used and no tensor stores: recycle it now. */
  release(array: Float32Array): void {
    const owned = this.owned.get(array.buffer);
    if (owned !== undefined && owned.refs <= 0) this.recycle(owned.array);
  }

  /** The contents were handed to user code: never reuse this buffer. */
  escape(values: unknown): void {
    if (values instanceof Float32Array) this.owned.delete(values.buffer);
  }

  /**
   * True when `values` is a whole pooled buffer that exactly one tensor stores and no caller has read: its owner may
   * then update it in place without anyone else seeing the change.
   */
  exclusive(values: unknown): boolean {
    if (!(values instanceof Float32Array)) return false;
    const owned = this.owned.get(values.buffer);
    return owned !== undefined && owned.refs === 1 && owned.array === values;
  }

  /** Bytes held by free buffers. */
  get pooledBytes(): number {
    return this.freeBytes;
  }

  clear(): void {
    this.free.clear();
    this.freeBytes = 0;
  }

  private recycle(array: Float32Array): void {
    this.owned.delete(array.buffer);
    if (this.freeBytes + array.byteLength > this.maxFreeBytes) return;
    let list = this.free.get(array.length);
    if (list === undefined) {
      list = [];
      this.free.set(array.length, list);
    }
    list.push(array);
    this.freeBytes += array.byteLength;
  }
}
