import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";

/**
 * A fresh directory under the OS temp dir, removed after the enclosing suite (or the file, at top level).
 * Set FUSIONKIT_KEEP_TMP=1 to keep it for inspection.
 */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `fusionkit-${prefix}-`));
  after(() => {
    if (process.env.FUSIONKIT_KEEP_TMP) process.stderr.write(`# kept ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

export interface FileState {
  readonly bytes: Buffer | undefined;
  readonly mtimeMs: number;
  readonly size: number;
  readonly kind: "file" | "dir" | "symlink";
}

/**
 * Everything under `dir` (recursively, symlinks not followed): bytes, mtime and kind of each entry, keyed by
 * relative path. Two snapshots deep-equal iff nothing was created, removed, rewritten or touched.
 */
export function snapshotTree(dir: string): Map<string, FileState> {
  const out = new Map<string, FileState>();
  const walk = (rel: string) => {
    const names = readdirSync(join(dir, rel)).sort();
    for (const name of names) {
      const r = rel === "" ? name : join(rel, name);
      const full = join(dir, r);
      const st = lstatSync(full);
      if (st.isSymbolicLink()) out.set(r, { bytes: undefined, mtimeMs: st.mtimeMs, size: st.size, kind: "symlink" });
      else if (st.isDirectory()) {
        out.set(r, { bytes: undefined, mtimeMs: st.mtimeMs, size: 0, kind: "dir" });
        walk(r);
      } else out.set(r, { bytes: readFileSync(full), mtimeMs: st.mtimeMs, size: st.size, kind: "file" });
    }
  };
  walk("");
  return out;
}

/** Number of open file descriptors of this process, or undefined where /proc is not available. */
export function openFdCount(): number | undefined {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return undefined;
  }
}
