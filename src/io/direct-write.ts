// Output writes that bypass the page cache (O_DIRECT, Linux) where the file system takes them. A merge must put
// every output byte on disk anyway (it fsyncs before the rename), and on these VMs a buffered write first has the
// kernel find a fresh page-cache page for every 4 KiB: 1.52 GB took 2.2-3.1 s that way when the free pages were
// cold, 0.84 s written direct (0.27-0.33 s buffered only while pages freed a moment earlier were still mapped).
import { closeSync, constants, openSync, writeSync } from "node:fs";
import { FusionError } from "../errors.js";
import { writeAllSync } from "./atomic.js";
import { closeFd } from "./file-read.js";

/** File offset, memory address and length alignment of a direct write (the page size covers every block size). */
export const DIRECT_ALIGN = 4096;

/** Whether output writes may go direct: FUSIONKIT_DIRECT_IO=0 turns it off. */
export function directIoWanted(): boolean {
  return process.env.FUSIONKIT_DIRECT_IO !== "0";
}

/**
 * One output file open twice: buffered, and (when the platform and file system allow) with O_DIRECT. `write` sends
 * the 4 KiB-aligned middle of a write straight to the device when its memory is aligned too, and the unaligned
 * ends (shared with neighbouring tensors) through the page cache. A page is thus only ever written one way, which
 * keeps the two paths coherent; `fsync` on the buffered descriptor then flushes both.
 */
export class OutputFile {
  private direct: number | undefined;

  constructor(
    readonly file: string,
    readonly fd: number,
    tryDirect: boolean,
  ) {
    this.direct = tryDirect ? openDirect(file) : undefined;
  }

  /** Open an existing file for positional writes (buffered, plus direct when `tryDirect` and supported). */
  static open(file: string, tryDirect: boolean): OutputFile {
    let fd: number;
    try {
      fd = openSync(file, "r+");
    } catch (e) {
      throw new FusionError("IO_ERROR", `cannot open for writing: ${(e as Error).message}`, { file, cause: e });
    }
    return new OutputFile(file, fd, tryDirect);
  }

  /** True while writes may take the direct path. */
  get isDirect(): boolean {
    return this.direct !== undefined;
  }

  write(data: Uint8Array, position: number): void {
    const head = (DIRECT_ALIGN - (position % DIRECT_ALIGN)) % DIRECT_ALIGN;
    const body = data.length > head ? Math.floor((data.length - head) / DIRECT_ALIGN) * DIRECT_ALIGN : 0;
    if (this.direct === undefined || body === 0 || (data.byteOffset + head) % DIRECT_ALIGN !== 0) {
      writeAllSync(this.fd, data, position, this.file);
      return;
    }
    if (head > 0) writeAllSync(this.fd, data.subarray(0, head), position, this.file);
    this.writeDirect(data.subarray(head, head + body), position + head);
    if (head + body < data.length) writeAllSync(this.fd, data.subarray(head + body), position + head + body, this.file);
  }

  /** An aligned write on the direct descriptor; where the file system refuses it, buffered from then on. */
  private writeDirect(data: Uint8Array, position: number): void {
    let done = 0;
    try {
      // A short direct write ends on a block boundary, so the rest stays aligned.
      while (done < data.length) done += writeSync(this.direct!, data, done, data.length - done, position + done);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "EINVAL" && code !== "EOPNOTSUPP") {
        throw new FusionError("IO_ERROR", `write failed: ${(e as Error).message}`, { file: this.file, cause: e });
      }
      this.closeDirect();
      writeAllSync(this.fd, data.subarray(done), position + done, this.file);
    }
  }

  private closeDirect(): void {
    if (this.direct === undefined) return;
    try {
      closeSync(this.direct);
    } catch {
      // nothing was left to flush: direct writes are complete when they return
    }
    this.direct = undefined;
  }

  close(): void {
    this.closeDirect();
    closeFd(this.fd);
  }
}

/** The file opened write-only with O_DIRECT, or undefined where the platform or file system (tmpfs) has none. */
function openDirect(file: string): number | undefined {
  const flag = (constants as { O_DIRECT?: number }).O_DIRECT;
  if (flag === undefined) return undefined;
  try {
    return openSync(file, constants.O_WRONLY | flag);
  } catch {
    return undefined;
  }
}
