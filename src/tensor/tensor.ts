import { FusionError, preview } from "../errors.js";
import { allocStorage, type DType, type DTypeStorage } from "./dtype.js";

/** A dense, row-major tensor: dtype + shape + the typed array holding its elements (F16/BF16 as raw bits). */
export interface Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: DTypeStorage[D];
}

/** Number of elements of a shape (1 for a scalar `[]`). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function isValidShape(shape: unknown): shape is number[] {
  return Array.isArray(shape) && shape.every((d) => Number.isSafeInteger(d) && d >= 0);
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Wrap existing storage as a tensor, checking that its length matches the shape. */
export function makeTensor<D extends DType>(dtype: D, shape: readonly number[], data: DTypeStorage[D]): Tensor<D> {
  if (!isValidShape(shape)) throw new FusionError("INVALID_ARGUMENT", `invalid shape ${preview(shape)}`);
  const n = numel(shape);
  if (data.length !== n) {
    throw new FusionError(
      "SHAPE_MISMATCH",
      `${dtype} data has ${data.length} elements but shape ${formatShape(shape)} needs ${n}`,
    );
  }
  return { dtype, shape: [...shape], data };
}

export function zeros<D extends DType>(dtype: D, shape: readonly number[]): Tensor<D> {
  return makeTensor(dtype, shape, allocStorage(dtype, numel(shape)));
}
