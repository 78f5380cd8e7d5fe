import { dtypeSize } from "../tensor/dtype.js";
import { numel } from "../tensor/tensor.js";
import type { MergePlan, PlannedTensor } from "./plan.js";

/** Bytes one worker holds for a tensor: raw inputs, their float32 copies, the float32 result and its encoding. */
export function tensorWorkingSet(t: PlannedTensor): number {
  const inputs = t.base === undefined ? t.inputs : [...t.inputs, t.base];
  const n = numel(t.outShape);
  return inputs.reduce((s, x) => s + x.bytes + numel(x.shape) * 4, 0) + n * 4 + n * dtypeSize(t.outDtype);
}

export interface PlanDescription {
  method: string;
  architecture: string;
  models: Array<{ ref: string; path: string }>;
  numLayers: number;
  tensors: Array<{
    name: string;
    dtype: string;
    shape: number[];
    inputs: string[];
    base?: string;
    params: Record<string, unknown>;
  }>;
  bytesRead: number;
  bytesWritten: number;
  /** Estimated peak memory of the tensor work (buffers are pooled per worker and grow to the largest tensor). */
  estimatedPeakBytes: number;
  warnings: string[];
}

export function describePlan(plan: MergePlan, jobs: number): PlanDescription {
  const largest = plan.tensors.reduce((m, t) => Math.max(m, tensorWorkingSet(t)), 0);
  const label = (x: { model: number; tensor: string }) => `${plan.models[x.model]!.ref}:${x.tensor}`;
  return {
    method: plan.method.name,
    architecture: plan.architecture.name,
    models: plan.models.map((m) => ({ ref: m.ref, path: m.path })),
    numLayers: plan.numLayers,
    tensors: plan.tensors.map((t) => ({
      name: t.name,
      dtype: t.outDtype,
      shape: [...t.outShape],
      inputs: t.inputs.map(label),
      ...(t.base === undefined ? {} : { base: label(t.base) }),
      params: { ...t.params, ...(t.modelParams.length > 0 ? { per_model: t.modelParams } : {}) },
    })),
    bytesRead: plan.bytesRead,
    bytesWritten: plan.bytesWritten,
    estimatedPeakBytes: largest * Math.max(1, Math.min(jobs, plan.tensors.length)),
    warnings: [...plan.warnings],
  };
}
