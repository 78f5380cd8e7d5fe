import { FusionError, preview } from "../errors.js";
import { type DType, dtypeSize, parseDType } from "../tensor/dtype.js";
import { parseStrictJson } from "./json-keys.js";

/** Where one tensor lives in a safetensors file. Offsets are relative to the start of the data section. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  /** Tensors in data-section order. */
  readonly tensors: readonly TensorInfo[];
  readonly byName: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>> | undefined;
  /** Byte length of the JSON header (N in the format). */
  readonly headerLength: number;
  /** Absolute file offset of the data section: 8 + N. */
  readonly dataStart: number;
  readonly dataLength: number;
}

export const MAX_HEADER_BYTES = 100_000_000;
const TENSOR_KEYS = new Set(["dtype", "shape", "data_offsets"]);
// ignoreBOM keeps a byte-order mark in the text, so the check for a leading "{" refuses it as the format requires.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Read the header length from the first 8 bytes (little-endian u64) and check it against the file size.
 * Returns N, the JSON header's byte length.
 */
export function parseHeaderLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || prefix.length < 8) {
    throw new FusionError("SAFETENSORS_TRUNCATED", `file is ${fileSize} bytes, shorter than the 8-byte header length`, {
      file,
    });
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new FusionError("SAFETENSORS_HEADER", `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`, {
      file,
    });
  }
  const len = Number(n);
  if (len < 2)
    throw new FusionError("SAFETENSORS_HEADER", `header length ${len} is too small for a JSON object`, { file });
  if (8 + len > fileSize) {
    throw new FusionError(
      "SAFETENSORS_TRUNCATED",
      `header length ${len} runs past the end of the ${fileSize}-byte file`,
      {
        file,
      },
    );
  }
  return len;
}

function checkedNumel(shape: readonly number[], file: string, tensor: string): number {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n))
      throw new FusionError("SAFETENSORS_HEADER", "shape has too many elements", { file, tensor });
  }
  return n;
}

function parseTensorEntry(name: string, raw: unknown, file: string): TensorInfo {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new FusionError("SAFETENSORS_HEADER", "entry is not an object", { file, tensor: name });
  }
  const entry = raw as Record<string, unknown>;
  for (const k of Object.keys(entry)) {
    if (!TENSOR_KEYS.has(k))
      throw new FusionError("SAFETENSORS_HEADER", `unexpected field '${k}'`, { file, tensor: name });
  }
  const dtype = parseDType(entry.dtype, { file, tensor: name });
  const shape = entry.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new FusionError("SAFETENSORS_HEADER", `shape ${preview(shape)} is not a list of non-negative integers`, {
      file,
      tensor: name,
    });
  }
  const offsets = entry.data_offsets;
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[0] > offsets[1]
  ) {
    throw new FusionError("SAFETENSORS_HEADER", `data_offsets ${preview(offsets)} is not [begin, end]`, {
      file,
      tensor: name,
    });
  }
  const begin = offsets[0] as number;
  const end = offsets[1] as number;
  const bytes = checkedNumel(shape, file, name) * dtypeSize(dtype);
  if (end - begin !== bytes) {
    throw new FusionError(
      "SAFETENSORS_HEADER",
      `${dtype} shape [${shape.join(", ")}] needs ${bytes} bytes but data_offsets span ${end - begin}`,
      { file, tensor: name },
    );
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

function parseMetadata(raw: unknown, file: string): Record<string, string> | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== "object" || Array.isArray(raw)) {
    throw new FusionError("SAFETENSORS_HEADER", "__metadata__ is not an object", { file, key: "__metadata__" });
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== "string") {
      throw new FusionError("SAFETENSORS_HEADER", "__metadata__ values must be strings", {
        file,
        key: `__metadata__.${k}`,
      });
    }
    // defineProperty keeps a key named "__proto__" as data instead of setting the prototype.
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/**
 * Parse and validate a header: the JSON bytes (N of them) and the file's total size. Refuses anything the format
 * does not allow: bad UTF-8 or JSON, repeated keys, unknown dtypes or fields, sizes that disagree with shapes, and
 * data offsets that leave holes, overlap or run outside the data section.
 */
export function parseSafetensorsHeader(json: Uint8Array, fileSize: number, file: string): SafetensorsHeader {
  let text: string;
  try {
    text = utf8.decode(json);
  } catch {
    throw new FusionError("SAFETENSORS_HEADER", "header is not valid UTF-8", { file });
  }
  if (!text.startsWith("{")) throw new FusionError("SAFETENSORS_HEADER", "header does not start with '{'", { file });
  const parsed = parseStrictJson(text, file, "SAFETENSORS_HEADER");
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new FusionError("SAFETENSORS_HEADER", "header is not a JSON object", { file });
  }
  const headerLength = json.length;
  const dataStart = 8 + headerLength;
  const dataLength = fileSize - dataStart;
  let metadata: Record<string, string> | undefined;
  const tensors: TensorInfo[] = [];
  for (const [name, raw] of Object.entries(parsed)) {
    if (name === "__metadata__") metadata = parseMetadata(raw, file);
    else tensors.push(parseTensorEntry(name, raw, file));
  }
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const t of tensors) {
    if (t.begin < cursor) {
      throw new FusionError("SAFETENSORS_HEADER", `data_offsets [${t.begin}, ${t.end}] overlap the previous tensor`, {
        file,
        tensor: t.name,
      });
    }
    if (t.begin > cursor) {
      throw new FusionError(
        "SAFETENSORS_HEADER",
        `hole in the data section: bytes ${cursor}..${t.begin} belong to no tensor`,
        {
          file,
          tensor: t.name,
        },
      );
    }
    cursor = t.end;
  }
  if (cursor !== dataLength) {
    const code = cursor > dataLength ? "SAFETENSORS_TRUNCATED" : "SAFETENSORS_HEADER";
    throw new FusionError(
      code,
      cursor > dataLength
        ? `tensors need ${cursor} data bytes but the file has ${dataLength}`
        : `data section has ${dataLength - cursor} trailing bytes that belong to no tensor`,
      { file },
    );
  }
  return { tensors, byName: new Map(tensors.map((t) => [t.name, t])), metadata, headerLength, dataStart, dataLength };
}
