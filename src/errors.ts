/** The one error type of fusionkit: a machine-readable code plus the file / tensor / config key at fault. */

export type FusionErrorCode =
  | "INVALID_ARGUMENT"
  | "UNSUPPORTED_DTYPE"
  | "DTYPE_MISMATCH"
  | "SHAPE_MISMATCH"
  | "FILE_NOT_FOUND"
  | "IO_ERROR"
  | "SAFETENSORS_HEADER"
  | "SAFETENSORS_TRUNCATED"
  | "TENSOR_NOT_FOUND"
  | "DUPLICATE_TENSOR"
  | "INDEX_INVALID"
  | "PATH_OUTSIDE_DIR"
  | "CONFIG_INVALID"
  | "MERGE_INVALID"
  | "NOT_SUPPORTED"
  | "CHECKPOINT_INVALID"
  | "DATA_EMPTY"
  | "TRAINING_DIVERGED";

export interface FusionErrorContext {
  file?: string;
  tensor?: string;
  key?: string;
  cause?: unknown;
}

export class FusionError extends Error {
  readonly code: FusionErrorCode;
  readonly file?: string;
  readonly tensor?: string;
  readonly key?: string;
  /** The message without the file / tensor / key prefix. */
  readonly detail: string;

  constructor(code: FusionErrorCode, message: string, context: FusionErrorContext = {}) {
    super(FusionError.compose(message, context), context.cause === undefined ? undefined : { cause: context.cause });
    this.name = "FusionError";
    this.code = code;
    this.detail = message;
    this.file = context.file;
    this.tensor = context.tensor;
    this.key = context.key;
  }

  private static compose(message: string, context: FusionErrorContext): string {
    const where: string[] = [];
    if (context.file !== undefined) where.push(context.file);
    if (context.tensor !== undefined) where.push(`tensor '${context.tensor}'`);
    if (context.key !== undefined) where.push(`key '${context.key}'`);
    return where.length === 0 ? message : `${where.join(": ")}: ${message}`;
  }
}

export function isFusionError(e: unknown): e is FusionError {
  return e instanceof FusionError;
}

/** A short, single-line rendering of any value for an error message (never throws, whatever its depth or size). */
export function preview(value: unknown, max = 60): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = Array.isArray(value) ? "[...]" : typeof value === "object" && value !== null ? "{...}" : String(value);
  }
  text = text.replace(/\s+/g, " ");
  return text.length > max ? `${text.slice(0, max)}...` : text;
}

/** Levenshtein distance (insert / delete / substitute, each 1), for "did you mean" hints. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
