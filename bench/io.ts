// npm run bench:io — read every tensor of a >= 1 GB multi-shard checkpoint through fusionkit's lazy reader and
// compare, in the same run, with a plain sequential read of the same bytes. Each measurement runs in its own child
// process so its peak RSS is its own; a smaller checkpoint is measured too, to show RSS does not grow with size.
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, openSync, readdirSync, readSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ModelDir } from "../src/io/model-dir.js";
import { formatBytes } from "../src/report/format.js";
import { writeSyntheticLlama } from "../src/synth/llama.js";
import { peakRssMB } from "./peak-rss.mjs";

const CACHE = resolve(fileURLToPath(import.meta.url), "../../.bench-cache");
const REPEATS = 5;

interface PhaseResult {
  seconds: number;
  bytes: number;
  maxRssMB: number;
}

const CHECKPOINTS = {
  // ~1.34 GB in 3 shards: 12 Llama layers of width 2048, vocab 32000, bf16.
  large: {
    shape: { vocabSize: 32000, hiddenSize: 2048, intermediateSize: 5632, numLayers: 12, numHeads: 16, numKvHeads: 4 },
  },
  // ~0.35 GB: the same tensors (so the same largest tensor), 1 layer.
  small: {
    shape: { vocabSize: 32000, hiddenSize: 2048, intermediateSize: 5632, numLayers: 1, numHeads: 16, numKvHeads: 4 },
  },
} as const;

function ensureCheckpoint(key: keyof typeof CHECKPOINTS): string {
  const dir = join(CACHE, `io-${key}-v2`);
  const done = join(dir, ".complete");
  if (existsSync(done)) return dir;
  rmSync(dir, { recursive: true, force: true });
  process.stdout.write(`generating ${key} checkpoint in ${dir} (cached for later runs)... `);
  const t0 = performance.now();
  writeSyntheticLlama(dir, { shape: CHECKPOINTS[key].shape, dtype: "BF16", baseSeed: 7, maxShardBytes: 500e6 });
  writeFileSync(done, "");
  console.log(`${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return dir;
}

function rawPhase(dir: string): PhaseResult {
  const buf = new Uint8Array(16 << 20);
  const t0 = performance.now();
  let bytes = 0;
  for (const f of readdirSync(dir)
    .filter((n) => n.endsWith(".safetensors"))
    .sort()) {
    const fd = openSync(join(dir, f), "r");
    try {
      for (;;) {
        const got = readSync(fd, buf, 0, buf.length, null);
        if (got === 0) break;
        bytes += got;
      }
    } finally {
      closeSync(fd);
    }
  }
  return { seconds: (performance.now() - t0) / 1000, bytes, maxRssMB: 0 };
}

/**
 * Open the model and read every tensor, in storage order, into one reused buffer (memory bounded by the largest
 * tensor). The first pass pays for touching that fresh buffer; `steady` is a second pass over the same buffer,
 * which is what every later model read of a long run (a merge reads several) costs.
 */
function fusionkitPhase(dir: string): PhaseResult & { steadySeconds: number } {
  const t0 = performance.now();
  const model = ModelDir.open(dir);
  const sd = model.stateDict;
  let largest = 0;
  for (const n of sd.names()) largest = Math.max(largest, sd.info(n).end - sd.info(n).begin);
  const pool = new Uint8Array(largest);
  const pass = (): number => {
    let bytes = 0;
    for (const n of sd.names()) bytes += sd.read(n, pool).data.byteLength;
    return bytes;
  };
  const bytes = pass();
  const seconds = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  pass();
  const steadySeconds = (performance.now() - t1) / 1000;
  model.close();
  return { seconds, bytes, maxRssMB: 0, steadySeconds };
}

function runChild(phase: string, dir: string): PhaseResult & { steadySeconds?: number } {
  const r = spawnSync(
    process.execPath,
    ["--import", import.meta.resolve("tsx"), fileURLToPath(import.meta.url), "--phase", phase, dir],
    {
      encoding: "utf8",
    },
  );
  if (r.status !== 0) throw new Error(`phase ${phase} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as PhaseResult;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function dropCaches(): boolean {
  try {
    spawnSync("sync");
    writeFileSync("/proc/sys/vm/drop_caches", "3");
    return true;
  } catch {
    return false;
  }
}

function main(): void {
  const argv = process.argv.slice(2);
  if (argv[0] === "--phase") {
    const res = argv[1] === "raw" ? rawPhase(argv[2]!) : fusionkitPhase(argv[2]!);
    res.maxRssMB = peakRssMB();
    console.log(JSON.stringify(res));
    return;
  }
  console.log("fusionkit bench:io — lazy tensor reads vs a plain sequential read of the same bytes\n");
  const rows: string[] = [];
  for (const key of ["small", "large"] as const) {
    const dir = ensureCheckpoint(key);
    const shards = readdirSync(dir).filter((n) => n.endsWith(".safetensors"));
    const size = shards.reduce((s, f) => s + statSync(join(dir, f)).size, 0);
    for (const cache of ["warm", "cold"] as const) {
      const raw: PhaseResult[] = [];
      const fk: Array<PhaseResult & { steadySeconds?: number }> = [];
      let cold = true;
      for (let i = 0; i < REPEATS; i++) {
        if (cache === "cold") cold = dropCaches() && cold;
        else runChild("raw", dir); // warm the page cache
        raw.push(runChild("raw", dir));
        if (cache === "cold") dropCaches();
        fk.push(runChild("fusionkit", dir));
      }
      if (cache === "cold" && !cold) {
        rows.push(`${key}: cold-cache runs skipped (cannot write /proc/sys/vm/drop_caches here)`);
        continue;
      }
      const rawT = median(raw.map((r) => r.bytes / r.seconds));
      const fkT = median(fk.map((r) => r.bytes / r.seconds));
      const steadyT = median(fk.map((r) => r.bytes / r.steadySeconds!));
      const steady =
        cache === "warm"
          ? `; steady state (buffer reused) ${formatBytes(steadyT)}/s, ratio ${(steadyT / rawT).toFixed(2)}`
          : "";
      rows.push(
        `${key} (${formatBytes(size)}, ${shards.length} shard(s), ${cache} page cache): raw ${formatBytes(rawT)}/s, ` +
          `fusionkit first pass ${formatBytes(fkT)}/s, ratio ${(fkT / rawT).toFixed(2)} (goal >= 0.8)${steady}; ` +
          `peak RSS raw ${median(raw.map((r) => r.maxRssMB)).toFixed(0)} MB, fusionkit ${median(fk.map((r) => r.maxRssMB)).toFixed(0)} MB`,
      );
      console.log(rows.at(-1));
    }
  }
  console.log(`\nmedian of ${REPEATS} runs each; each run is a fresh process (node ${process.version}).`);
}

main();
