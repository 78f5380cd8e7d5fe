/**
 * The `fusionkit` TensorFlow.js backend: tfjs-backend-cpu's MathBackendCPU (so every kernel exists) whose tensor
 * storage recycles the Float32Arrays that fusionkit's own kernels allocate (see pool.ts). Kernels reach it through
 * `values()` / `output()`; registration lives in register.ts.
 */
import type { BackendValues, DataId, DataType, TensorInfo } from "@tensorflow/tfjs";
import { MathBackendCPU } from "@tensorflow/tfjs-backend-cpu";
import { BufferPool } from "./pool.js";

export const FUSION_BACKEND = "fusionkit";

export class FusionBackend extends MathBackendCPU {
  readonly pool = new BufferPool();

  constructor() {
    super();
    // MathBackendCPU warns "install tfjs-node" on first write; this backend is the answer to that warning.
    (this as unknown as { firstUse: boolean }).firstUse = false;
  }

  override write(values: BackendValues, shape: number[], dtype: DataType): DataId {
    const dataId = super.write(values, shape, dtype);
    this.pool.ref(values);
    return dataId;
  }

  override move(dataId: DataId, values: BackendValues, shape: number[], dtype: DataType, refCount: number): void {
    super.move(dataId, values, shape, dtype, refCount);
    this.pool.ref(values);
  }

  override readSync(dataId: DataId): BackendValues {
    if (this.data.has(dataId)) this.pool.escape(this.data.get(dataId)!.values);
    return super.readSync(dataId);
  }

  override disposeData(dataId: DataId, force = false): boolean {
    const values = this.data.has(dataId) ? this.data.get(dataId)!.values : undefined;
    const released = super.disposeData(dataId, force);
    if (values !== undefined && !this.data.has(dataId)) this.pool.unref(values);
    return released;
  }

  /** The stored values of a float32 tensor. */
  f32(t: TensorInfo): Float32Array {
    return this.data.get(t.dataId)!.values as Float32Array;
  }

  /** A float32 output tensor over `values` (normally from `this.pool.alloc`). */
  output(shape: number[], values: Float32Array): TensorInfo {
    return this.makeTensorInfo(shape, "float32", values);
  }
}

/** The kernel argument, typed for this backend. */
export function asFusion(backend: unknown): FusionBackend {
  return backend as FusionBackend;
}
