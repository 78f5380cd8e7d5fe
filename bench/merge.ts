// npm run bench:merge — merge three Llama-shaped bf16 checkpoints (>= 1.5 GB each) plus a base with linear,
// task_arithmetic, ties (density 0.5) and dare_ties, against a raw I/O baseline (read every input byte, write one
// output's bytes, fsync), in one run. Each measurement is its own process (bench/merge-child.mjs) so peak RSS is its
// own; a 4-layer set with the same tensor sizes shows whether peak RSS depends on checkpoint size. Merges run the
// built package (dist/, as `fusionkit merge` does; the npm script builds it first) under plain node: under tsx every
// worker thread would register the TypeScript loader, start-up that no user pays.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { formatBytes } from "../src/report/format.js";
import { writeSyntheticLlama } from "../src/synth/llama.js";

const CACHE = resolve(fileURLToPath(import.meta.url), "../../.bench-cache");
const SHAPE = { vocabSize: 32000, hiddenSize: 2048, intermediateSize: 5632, numHeads: 16, numKvHeads: 4 };
const SETS = { large: 14, small: 4 } as const;
const MODELS = ["base", "ft1", "ft2", "ft3"];
const METHODS: Record<string, string> = {
  linear:
    "merge_method: linear\nmodels:\n  - model: ft1\n    parameters: {weight: 0.4}\n  - model: ft2\n    parameters: {weight: 0.3}\n  - model: ft3\n    parameters: {weight: 0.3}\ndtype: bfloat16\n",
  task_arithmetic:
    "merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: ft1\n    parameters: {weight: 0.5}\n  - model: ft2\n    parameters: {weight: 0.5}\n  - model: ft3\n    parameters: {weight: 0.5}\ndtype: bfloat16\n",
  ties: "merge_method: ties\nbase_model: base\nparameters: {density: 0.5, weight: 0.5}\nmodels:\n  - model: ft1\n  - model: ft2\n  - model: ft3\ndtype: bfloat16\n",
  dare_ties:
    "merge_method: dare_ties\nbase_model: base\nparameters: {density: 0.5, weight: 0.5}\nmodels:\n  - model: ft1\n  - model: ft2\n  - model: ft3\ndtype: bfloat16\n",
};

function ensureSet(key: keyof typeof SETS): string {
  const dir = join(CACHE, `merge-${key}`);
  const done = join(dir, ".complete");
  if (existsSync(done)) return dir;
  rmSync(dir, { recursive: true, force: true });
  for (const [i, m] of MODELS.entries()) {
    process.stdout.write(`generating ${key}/${m} (${SETS[key]} layers)... `);
    const t0 = performance.now();
    writeSyntheticLlama(join(dir, m), {
      shape: { ...SHAPE, numLayers: SETS[key] },
      dtype: "BF16",
      baseSeed: 11,
      finetuneSeed: i === 0 ? undefined : i,
      maxShardBytes: 1e9,
    });
    console.log(`${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  for (const [name, cfg] of Object.entries(METHODS)) writeFileSync(join(dir, `${name}.yml`), cfg);
  writeFileSync(done, "");
  return dir;
}

function shardFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".safetensors"))
    .map((f) => join(dir, f));
}

interface Measured {
  seconds: number;
  /** User + system CPU seconds of the whole process (worker threads included): less sensitive to other load. */
  cpuSeconds: number;
  maxRssMB: number;
}

function measure(what: string, setDir: string, jobs: number): Measured {
  const child = fileURLToPath(new URL("./merge-child.mjs", import.meta.url));
  const r = spawnSync(process.execPath, [child, what, setDir, String(jobs)], {
    encoding: "utf8",
    cwd: setDir, // model references in the configs are relative to the set's folder
  });
  if (r.status !== 0) throw new Error(`${what} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as Measured;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const jobs = Math.max(1, cpus().length);
  // --repeat N (default 3): N (baseline, method) pairs per method; the fastest baseline and the fastest method run
  // are reported (noise only adds: on these VMs one run of the same work can take twice as long as the next).
  const ri = argv.indexOf("--repeat");
  const repeat = ri >= 0 ? Math.max(1, Number(argv[ri + 1]) || 1) : 3;
  console.log(`fusionkit bench:merge — 3 fine-tunes + base, bf16, -j ${jobs}, warm page cache, best of ${repeat}\n`);
  for (const key of ["large", "small"] as const) {
    const dir = ensureSet(key);
    const size = shardFiles(join(dir, "ft1")).reduce((s, f) => s + statSync(f).size, 0);
    console.log(`\n${key}: ${SETS[key]} layers, ${formatBytes(size)} per checkpoint`);
    // Each method is paired with a baseline run just before it: page-cache residency drifts on these VMs (the
    // kernel's DAMON reclaim evicts cold pages), so adjacent runs see the same cache state.
    measure("baseline", dir, jobs); // warm the page cache
    for (const method of Object.keys(METHODS)) {
      let base = measure("baseline", dir, jobs);
      let m = measure(method, dir, jobs);
      const baseRuns = [base.seconds];
      for (let r = 1; r < repeat; r++) {
        const b2 = measure("baseline", dir, jobs);
        const m2 = measure(method, dir, jobs);
        baseRuns.push(b2.seconds);
        if (b2.seconds < base.seconds) base = b2;
        if (m2.seconds < m.seconds) m = m2;
      }
      const goal = method === "linear" || method === "task_arithmetic" ? 1.2 : 1.6;
      console.log(
        `  ${method.padEnd(16)} ${m.seconds.toFixed(2).padStart(6)} s  vs raw I/O ${base.seconds.toFixed(2)} s: ` +
          `${(m.seconds / base.seconds).toFixed(2)}x (goal <= ${goal}x; raw I/O runs ${baseRuns.map((x) => x.toFixed(2)).join(" / ")} s)   CPU ${m.cpuSeconds.toFixed(2)} s (raw I/O ` +
          `${base.cpuSeconds.toFixed(2)} s)   peak RSS ${m.maxRssMB.toFixed(0)} MB (raw I/O ${base.maxRssMB.toFixed(0)} MB)`,
      );
    }
  }
}

await main();
