import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { FusionError } from "../errors.js";

let counter = 0;

/** A hidden temporary name beside `path`, unique to this process: the complete file is renamed over `path`. */
export function tempPathFor(path: string): string {
  counter++;
  return join(dirname(path), `.${basename(path)}.fusionkit-tmp-${process.pid}-${counter}`);
}

export function writeAllSync(fd: number, data: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < data.length) {
    try {
      done += writeSync(fd, data, done, data.length - done, position + done);
    } catch (e) {
      throw new FusionError("IO_ERROR", `write failed: ${(e as Error).message}`, { file, cause: e });
    }
  }
}

export function openWriteFd(file: string): number {
  try {
    return openSync(file, "wx");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT")
      throw new FusionError("FILE_NOT_FOUND", "output directory does not exist", { file, cause: e });
    throw new FusionError("IO_ERROR", `cannot create: ${(e as Error).message}`, { file, cause: e });
  }
}

/** Flush and close `fd`, then rename `tmp` to `path`. */
export function commitFile(fd: number, tmp: string, path: string): void {
  try {
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    throw new FusionError("IO_ERROR", `cannot finish writing: ${(e as Error).message}`, { file: path, cause: e });
  }
}

export function discardFile(fd: number | undefined, tmp: string): void {
  if (fd !== undefined) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
  }
  rmSync(tmp, { force: true });
}

/** Write a whole small file (JSON, text) atomically. */
export function writeFileAtomic(path: string, content: string | Uint8Array): void {
  const tmp = tempPathFor(path);
  const fd = openWriteFd(tmp);
  try {
    writeAllSync(fd, typeof content === "string" ? new TextEncoder().encode(content) : content, 0, tmp);
    commitFile(fd, tmp, path);
  } catch (e) {
    discardFile(fd, tmp);
    throw e;
  }
}
