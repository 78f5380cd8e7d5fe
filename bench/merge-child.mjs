// One measurement of bench:merge (bench/merge.ts), in a process of its own so its peak RSS is its own:
//   node bench/merge-child.mjs baseline|METHOD SET_DIR JOBS
// Plain JavaScript over the built package (dist/), run by plain node, as `fusionkit merge` runs: a child under tsx
// would pass tsx's loader on to every merge and writer thread (execArgv is inherited), and each would register it,
// ~0.15 s of wall and 0.3 CPU-s per merge that no user pays. Prints { seconds, cpuSeconds, maxRssMB } as JSON.
import { closeSync, fsyncSync, openSync, readdirSync, readSync, rmSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { peakRssMB } from "./peak-rss.mjs";

const MODELS = ["base", "ft1", "ft2", "ft3"];

/** @param {string} dir */
function shardFiles(dir) {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".safetensors"))
    .map((f) => join(dir, f));
}

/**
 * Read every byte of the inputs (16 MB reads), write as many bytes as one model to a file, fsync. Through the page
 * cache, so on these VMs its write takes 0.3 s for 1.52 GB right after a run freed pages, ~2-3 s once freed memory
 * has gone back to the host (1-3 s later): the driver prints every run's time.
 * @param {string} setDir
 * @param {string} out
 */
function baseline(setDir, out) {
  const buf = new Uint8Array(16 << 20);
  for (const m of MODELS) {
    for (const f of shardFiles(join(setDir, m))) {
      const fd = openSync(f, "r");
      while (readSync(fd, buf, 0, buf.length, null) > 0);
      closeSync(fd);
    }
  }
  const outBytes = shardFiles(join(setDir, "ft1")).reduce((s, f) => s + statSync(f).size, 0);
  const fd = openSync(out, "w");
  let written = 0;
  while (written < outBytes) written += writeSync(fd, buf, 0, Math.min(buf.length, outBytes - written));
  fsyncSync(fd);
  closeSync(fd);
  rmSync(out);
}

const [what, setDir, jobs] = process.argv.slice(2);
if (what === undefined || setDir === undefined || jobs === undefined) {
  console.error("usage: node bench/merge-child.mjs baseline|METHOD SET_DIR JOBS");
  process.exit(2);
}
const out = join(setDir, `out-${what}`);
rmSync(out, { recursive: true, force: true });
const t0 = performance.now();
const c0 = process.cpuUsage();
if (what === "baseline") baseline(setDir, out);
else {
  const { merge } = await import(new URL("../dist/engine/merge.js", import.meta.url).href);
  await merge(join(setDir, `${what}.yml`), out, { jobs: Number(jobs), randomSeed: 1 });
}
const seconds = (performance.now() - t0) / 1000;
const c = process.cpuUsage(c0);
rmSync(out, { recursive: true, force: true });
console.log(JSON.stringify({ seconds, cpuSeconds: (c.user + c.system) / 1e6, maxRssMB: peakRssMB() }));
