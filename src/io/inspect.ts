import { existsSync, statSync } from "node:fs";
import { basename } from "node:path";
import { FusionError } from "../errors.js";
import { numel } from "../tensor/tensor.js";
import { ModelDir, openSafetensorsStateDict, type ShardInfo } from "./model-dir.js";

export interface InspectTensor {
  name: string;
  dtype: string;
  shape: number[];
  params: number;
  bytes: number;
  file: string;
}

export interface InspectReport {
  path: string;
  kind: "file" | "directory";
  tensors: InspectTensor[];
  params: number;
  bytes: number;
  /** Parameter count per dtype. */
  dtypes: Record<string, number>;
  shards: ShardInfo[];
  index: { file: string; totalSize: number | undefined } | undefined;
  metadata: Record<string, string> | undefined;
  config: Record<string, unknown> | undefined;
}

/** Describe a safetensors file or a Hugging Face model directory from headers alone (no tensor data is read). */
export function inspect(path: string): InspectReport {
  if (!existsSync(path)) throw new FusionError("FILE_NOT_FOUND", "no such file or directory", { file: path });
  const isDir = statSync(path).isDirectory();
  const model = isDir ? ModelDir.open(path) : undefined;
  const single = isDir ? undefined : openSafetensorsStateDict(path);
  const sd = model?.stateDict ?? single!;
  try {
    const tensors: InspectTensor[] = sd.names().map((name) => {
      const t = sd.info(name);
      return {
        name,
        dtype: t.dtype,
        shape: [...t.shape],
        params: numel(t.shape),
        bytes: t.end - t.begin,
        file: isDir ? basename(t.file) : basename(path),
      };
    });
    const dtypes: Record<string, number> = {};
    for (const t of tensors) dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + t.params;
    const shards = model
      ? [...model.shards]
      : [
          {
            file: basename(path),
            bytes: single!.file.fileSize,
            tensors: tensors.length,
            metadata: single!.file.metadata,
          },
        ];
    return {
      path,
      kind: isDir ? "directory" : "file",
      tensors,
      params: tensors.reduce((s, t) => s + t.params, 0),
      bytes: tensors.reduce((s, t) => s + t.bytes, 0),
      dtypes,
      shards,
      index: model?.indexFile ? { file: basename(model.indexFile), totalSize: model.indexTotalSize } : undefined,
      metadata: single?.file.metadata ? { ...single.file.metadata } : undefined,
      config: model?.config(),
    };
  } finally {
    sd.close();
  }
}
