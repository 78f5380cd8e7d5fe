import { closeSync, fstatSync, openSync, readFileSync, readSync } from "node:fs";
import { FusionError } from "../errors.js";

/** Positional reads of exact length: loop over short reads; a premature end of file is a typed truncation error. */
export function readExactSync(fd: number, target: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < target.length) {
    const got = readSync(fd, target, done, target.length - done, position + done);
    if (got === 0) {
      throw new FusionError(
        "SAFETENSORS_TRUNCATED",
        `unexpected end of file at byte ${position + done} (wanted ${target.length} bytes at ${position})`,
        { file },
      );
    }
    done += got;
  }
}

export function openReadFd(file: string): number {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new FusionError("FILE_NOT_FOUND", "no such file", { file, cause: e });
    if (code === "EISDIR")
      throw new FusionError("INVALID_ARGUMENT", "is a directory, expected a file", { file, cause: e });
    throw new FusionError("IO_ERROR", `cannot open: ${(e as Error).message}`, { file, cause: e });
  }
  // Linux opens directories for reading; refuse anything that is not a regular file here, by name.
  if (!fstatSync(fd).isFile()) {
    closeFd(fd);
    throw new FusionError("INVALID_ARGUMENT", "is not a regular file (a directory?)", { file });
  }
  return fd;
}

/** A whole small text file (JSON indexes, configs), with typed errors for missing files and directories. */
export function readTextFile(file: string): string {
  const fd = openReadFd(file);
  try {
    return readFileSync(fd, "utf8");
  } catch (e) {
    throw new FusionError("IO_ERROR", `cannot read: ${(e as Error).message}`, { file, cause: e });
  } finally {
    closeFd(fd);
  }
}

export function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
