import { existsSync, realpathSync, statSync } from "node:fs";
import { basename, isAbsolute, join, relative, resolve, sep } from "node:path";
import { FusionError } from "../errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { readTextFile } from "./file-read.js";
import { parseStrictJson } from "./json-keys.js";
import type { TensorInfo } from "./safetensors-header.js";
import { SafetensorsFile } from "./safetensors-read.js";
import { INDEX_FILE, SINGLE_FILE } from "./sharded-write.js";

/** A tensor's header entry plus the file that holds it. */
export interface LocatedTensorInfo extends TensorInfo {
  readonly file: string;
  /** Absolute byte offset of the tensor's data in `file`. */
  readonly offset: number;
}

/** Named tensors that are read only when asked for, one at a time. */
export interface LazyStateDict {
  names(): string[];
  has(name: string): boolean;
  info(name: string): LocatedTensorInfo;
  read(name: string, into?: Uint8Array): Tensor;
  readBytes(name: string, into?: Uint8Array): Uint8Array;
  close(): void;
}

export interface ShardInfo {
  readonly file: string;
  readonly bytes: number;
  readonly tensors: number;
  readonly metadata: Readonly<Record<string, string>> | undefined;
}

/** A set of open safetensors files seen as one state dict, each tensor owned by exactly one file. */
class FileSetStateDict implements LazyStateDict {
  constructor(
    private readonly owner: ReadonlyMap<string, SafetensorsFile>,
    private readonly files: readonly SafetensorsFile[],
  ) {}

  names(): string[] {
    return [...this.owner.keys()];
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  private fileOf(name: string): SafetensorsFile {
    const f = this.owner.get(name);
    if (f === undefined) throw new FusionError("TENSOR_NOT_FOUND", "no such tensor in the model", { tensor: name });
    return f;
  }

  info(name: string): LocatedTensorInfo {
    const f = this.fileOf(name);
    const t = f.info(name);
    return { ...t, file: f.path, offset: f.header.dataStart + t.begin };
  }

  read(name: string, into?: Uint8Array): Tensor {
    return this.fileOf(name).read(name, into);
  }

  readBytes(name: string, into?: Uint8Array): Uint8Array {
    return this.fileOf(name).readBytes(name, into);
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}

/** One safetensors file as a state dict. */
export function openSafetensorsStateDict(path: string): LazyStateDict & { file: SafetensorsFile } {
  const f = SafetensorsFile.open(path);
  const sd = new FileSetStateDict(new Map(f.names().map((n) => [n, f])), [f]);
  return Object.assign(sd, { file: f });
}

export class ModelDir {
  private constructor(
    readonly dir: string,
    readonly stateDict: LazyStateDict,
    readonly shards: readonly ShardInfo[],
    readonly indexFile: string | undefined,
    readonly indexTotalSize: number | undefined,
  ) {}

  /**
   * Open a Hugging Face model directory: `model.safetensors`, or `model.safetensors.index.json` plus its shards.
   * Every shard header is validated up front; no tensor data is read.
   */
  static open(dir: string): ModelDir {
    if (!existsSync(dir)) throw new FusionError("FILE_NOT_FOUND", "model directory does not exist", { file: dir });
    if (!statSync(dir).isDirectory()) throw new FusionError("INVALID_ARGUMENT", "not a directory", { file: dir });
    const indexPath = join(dir, INDEX_FILE);
    if (existsSync(indexPath)) return ModelDir.openIndexed(dir, indexPath);
    const single = join(dir, SINGLE_FILE);
    if (existsSync(single)) {
      const sd = openSafetensorsStateDict(single);
      const shard = {
        file: SINGLE_FILE,
        bytes: sd.file.fileSize,
        tensors: sd.file.tensors.length,
        metadata: sd.file.metadata,
      };
      return new ModelDir(dir, sd, [shard], undefined, undefined);
    }
    const hint = existsSync(join(dir, "pytorch_model.bin"))
      ? " (pytorch_model.bin found: convert it to safetensors first; pickle checkpoints are not read)"
      : "";
    throw new FusionError("FILE_NOT_FOUND", `no ${SINGLE_FILE} or ${INDEX_FILE}${hint}`, { file: dir });
  }

  private static openIndexed(dir: string, indexPath: string): ModelDir {
    const index = parseStrictJson(readTextFile(indexPath), indexPath, "INDEX_INVALID");
    if (typeof index !== "object" || index === null || Array.isArray(index)) {
      throw new FusionError("INDEX_INVALID", "index is not a JSON object", { file: indexPath });
    }
    const { weight_map: weightMap, metadata } = index as Record<string, unknown>;
    if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap)) {
      throw new FusionError("INDEX_INVALID", "missing or invalid weight_map", { file: indexPath, key: "weight_map" });
    }
    let totalSize: number | undefined;
    if (metadata !== undefined && metadata !== null) {
      const ts = (metadata as Record<string, unknown>).total_size;
      if (ts !== undefined && !(Number.isSafeInteger(ts) && (ts as number) >= 0)) {
        throw new FusionError("INDEX_INVALID", "total_size is not a non-negative integer", {
          file: indexPath,
          key: "metadata.total_size",
        });
      }
      totalSize = ts as number | undefined;
    }
    const root = realpathSync(dir);
    const byFile = new Map<string, string[]>();
    for (const [tensor, file] of Object.entries(weightMap)) {
      if (typeof file !== "string" || file === "") {
        throw new FusionError("INDEX_INVALID", "shard file name must be a non-empty string", {
          file: indexPath,
          tensor,
        });
      }
      const list = byFile.get(file);
      if (list === undefined) byFile.set(file, [tensor]);
      else list.push(tensor);
    }
    const opened: SafetensorsFile[] = [];
    const listed = new Map<string, SafetensorsFile>();
    try {
      for (const [file, tensors] of [...byFile].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
        const shardPath = ModelDir.shardPath(root, dir, file, indexPath, tensors[0]!);
        const f = SafetensorsFile.open(shardPath);
        opened.push(f);
        for (const t of tensors) {
          if (!f.has(t)) {
            throw new FusionError("TENSOR_NOT_FOUND", `listed in ${basename(indexPath)} but absent from its shard`, {
              file: shardPath,
              tensor: t,
            });
          }
          listed.set(t, f);
        }
      }
      // A tensor stored in two shards is ambiguous whichever one the index names.
      const seenIn = new Map<string, string>();
      for (const f of opened) {
        for (const name of f.names()) {
          const other = seenIn.get(name);
          if (other !== undefined) {
            throw new FusionError(
              "DUPLICATE_TENSOR",
              `stored in two shards (${basename(other)} and ${basename(f.path)})`,
              {
                file: indexPath,
                tensor: name,
              },
            );
          }
          seenIn.set(name, f.path);
        }
      }
    } catch (e) {
      for (const f of opened) f.close();
      throw e;
    }
    // Names in storage order: shard by shard, by data offset within a shard.
    const owner = new Map<string, SafetensorsFile>();
    for (const f of opened) for (const t of f.tensors) if (listed.get(t.name) === f) owner.set(t.name, f);
    const shards = opened.map((f) => ({
      file: relative(dir, f.path),
      bytes: f.fileSize,
      tensors: f.tensors.length,
      metadata: f.metadata,
    }));
    return new ModelDir(dir, new FileSetStateDict(owner, opened), shards, indexPath, totalSize);
  }

  /** Resolve a shard name from the index, refusing anything that would leave the model directory. */
  private static shardPath(root: string, dir: string, file: string, indexPath: string, tensor: string): string {
    const outside = () =>
      new FusionError("PATH_OUTSIDE_DIR", `shard '${file}' points outside the model directory`, {
        file: indexPath,
        tensor,
      });
    if (isAbsolute(file) || file.includes("\0")) throw outside();
    const full = resolve(dir, file);
    const rel = relative(resolve(dir), full);
    if (rel === "" || rel.startsWith(`..${sep}`) || rel === ".." || isAbsolute(rel)) throw outside();
    if (!existsSync(full)) {
      throw new FusionError("FILE_NOT_FOUND", `shard '${file}' named in ${basename(indexPath)} is missing`, {
        file: full,
        tensor,
      });
    }
    const real = realpathSync(full);
    if (real !== root && !real.startsWith(root + sep)) throw outside();
    return full;
  }

  /** config.json parsed, or undefined when the directory has none. */
  config(): Record<string, unknown> | undefined {
    return readModelConfig(this.dir);
  }

  close(): void {
    this.stateDict.close();
  }
}

export function readModelConfig(dir: string): Record<string, unknown> | undefined {
  const path = join(dir, "config.json");
  if (!existsSync(path)) return undefined;
  const value = parseStrictJson(readTextFile(path), path, "CONFIG_INVALID");
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new FusionError("CONFIG_INVALID", "config.json is not a JSON object", { file: path });
  }
  return value as Record<string, unknown>;
}

/** Open a file (one safetensors) or a model directory as a state dict. */
export function openStateDict(path: string): LazyStateDict {
  if (existsSync(path) && statSync(path).isDirectory()) return ModelDir.open(path).stateDict;
  return openSafetensorsStateDict(path);
}
