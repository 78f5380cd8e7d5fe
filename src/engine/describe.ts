import { WRITER_SLOT_BYTES } from "../io/block-writer.js";
import type { MergeMethodSpec } from "../merge/types.js";
import { dtypeSize } from "../tensor/dtype.js";
import { numel } from "../tensor/tensor.js";
import type { MergePlan, PlannedTensor } from "./plan.js";
import { CHUNK, cacheBudget, IO_BLOCK_CHUNKS, mergeForm, streamInputOf } from "./tensor-task.js";

/** Bytes one worker holds to merge a tensor whole: raw inputs, their float32 copies, the float32 result and its encoding. */
export function tensorWorkingSet(t: PlannedTensor): number {
  const inputs = t.base === undefined ? t.inputs : [...t.inputs, t.base];
  const n = numel(t.outShape);
  return inputs.reduce((s, x) => s + x.bytes + numel(x.shape) * 4, 0) + n * 4 + n * dtypeSize(t.outDtype);
}

/**
 * Bytes one worker holds for a tensor on the path the executor takes (tensor-task.ts's mergeForm): the whole
 * tensor; or per input a block of raw elements and a float32 chunk, and the output's (chunked); or those, the input
 * cache and what the method's stream keeps (streamed). The wasm arena does not shrink, so a worker's peak is its
 * largest tensor's figure.
 */
export function tensorPeakBytes(t: PlannedTensor, method: MergeMethodSpec): number {
  const form = mergeForm(t, method, CHUNK);
  if (form === "whole") return tensorWorkingSet(t);
  const all = t.base === undefined ? t.inputs : [...t.inputs, t.base];
  const n = numel(t.outShape);
  const block = Math.min(n, CHUNK * IO_BLOCK_CHUNKS);
  const perElement = all.reduce((s, x) => s + dtypeSize(x.dtype), 0);
  const buffers = block * (perElement + dtypeSize(t.outDtype)) + CHUNK * 4 * (all.length + 1);
  if (form === "chunked") return buffers;
  const stream = method.streamingBytes?.(streamInputOf(t), CHUNK);
  if (stream === undefined) return tensorWorkingSet(t);
  return buffers + Math.min(cacheBudget({}), n * perElement) + stream;
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
  /**
   * Estimated peak memory of the tensor work: per worker its largest tensor's buffers (tensorPeakBytes; they are
   * pooled and grow to the largest) and its writer thread's slots.
   */
  estimatedPeakBytes: number;
  warnings: string[];
}

export function describePlan(plan: MergePlan, jobs: number): PlanDescription {
  const largest = plan.tensors.reduce((m, t) => Math.max(m, tensorPeakBytes(t, plan.method)), 0);
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
    estimatedPeakBytes: (largest + WRITER_SLOT_BYTES) * Math.max(1, Math.min(jobs, plan.tensors.length)),
    warnings: [...plan.warnings],
  };
}
