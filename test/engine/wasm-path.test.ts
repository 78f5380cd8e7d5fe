import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { merge } from "../../src/engine/merge.js";
import type { DType } from "../../src/tensor/dtype.js";
import { wasmArena } from "../../src/wasm/arena.js";
import { writeModelSet } from "../helpers/models.js";
import { tempDir } from "../helpers/tmp.js";

// The engine's WebAssembly path (chunks read into wasm memory, SIMD kernels, the streaming input cache) against
// the pure-JS path (FUSIONKIT_NO_WASM=1) and the whole-tensor merge: the same bytes, for every input dtype the
// kernels decode, with rounding through the config's dtype, whole or partial input caching, -j 1 and -j 2, output
// blocks written here or by the writer thread, direct or buffered.

const root = tempDir("wasm-path");

async function withEnv<T>(env: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

const configs = (dir: string, dtype: string): [string, string][] => {
  const m = (name: string) => join(dir, name);
  const three = `models:\n  - model: ${m("ft1")}\n  - model: ${m("ft2")}\n  - model: ${m("ft3")}\n`;
  return [
    [
      "linear",
      `merge_method: linear\nmodels:\n  - model: ${m("ft1")}\n    parameters: {weight: 0.4}\n  - model: ${m("ft2")}\n    parameters: {weight: 0.3}\n  - model: ${m("ft3")}\n    parameters: {weight: 0.3}\n${dtype}`,
    ],
    [
      "task_arithmetic",
      `merge_method: task_arithmetic\nbase_model: ${m("base")}\nparameters: {weight: 0.5, lambda: 0.8}\n${three}${dtype}`,
    ],
    ["ties", `merge_method: ties\nbase_model: ${m("base")}\nparameters: {density: 0.5, weight: 0.5}\n${three}${dtype}`],
    [
      "ties-rescale",
      `merge_method: ties\nbase_model: ${m("base")}\nparameters: {density: 0.3, weight: 0.5, rescale: true}\n${three}${dtype}`,
    ],
    [
      "dare_ties",
      `merge_method: dare_ties\nbase_model: ${m("base")}\nparameters: {density: 0.5, weight: 0.5}\n${three}${dtype}`,
    ],
    [
      "slerp",
      `merge_method: slerp\nbase_model: ${m("base")}\nparameters: {t: 0.3}\nmodels:\n  - model: ${m("ft1")}\n${dtype}`,
    ],
    [
      "slerp-gradient",
      `merge_method: slerp\nbase_model: ${m("base")}\nparameters: {t: [0, 0.5, 1]}\nmodels:\n  - model: ${m("base")}\n  - model: ${m("ft2")}\n${dtype}`,
    ],
    [
      "nuslerp",
      `merge_method: nuslerp\nmodels:\n  - model: ${m("ft1")}\n    parameters: {weight: 0.3}\n  - model: ${m("ft2")}\n    parameters: {weight: 0.6}\n${dtype}`,
    ],
    [
      "nuslerp-base",
      `merge_method: nuslerp\nbase_model: ${m("base")}\nmodels:\n  - model: ${m("ft1")}\n    parameters: {weight: 0.5}\n  - model: ${m("ft3")}\n    parameters: {weight: 0.5}\n${dtype}`,
    ],
    [
      "multislerp",
      `merge_method: multislerp\nmodels:\n  - model: ${m("ft1")}\n    parameters: {weight: 0.2}\n  - model: ${m("ft2")}\n    parameters: {weight: 0.5}\n  - model: ${m("ft3")}\n    parameters: {weight: 0.3}\n${dtype}`,
    ],
    [
      "multislerp-base",
      `merge_method: multislerp\nbase_model: ${m("base")}\nmodels:\n  - model: ${m("ft1")}\n    parameters: {weight: 0.5}\n  - model: ${m("ft2")}\n    parameters: {weight: 0.5}\n${dtype}`,
    ],
    ["model_stock", `merge_method: model_stock\nbase_model: ${m("base")}\n${three}${dtype}`],
    [
      "model_stock-filter-wise",
      `merge_method: model_stock\nbase_model: ${m("base")}\nparameters: {filter_wise: true}\n${three}${dtype}`,
    ],
    [
      "dare_linear",
      `merge_method: dare_linear\nbase_model: ${m("base")}\nparameters: {density: 0.6, weight: 0.5}\nmodels:\n  - model: ${m("ft1")}\n  - model: ${m("ft2")}\n${dtype}`,
    ],
  ];
};

const sets: [DType, string][] = [
  ["BF16", "dtype: bfloat16\n"],
  ["F16", "dtype: bfloat16\n"], // f16 inputs rounded through bf16
  ["F32", "dtype: float16\n"], // f32 inputs rounded through f16 (the JS rounding inside the wasm path)
  ["F32", ""],
];

describe("merge: WebAssembly path equals the pure-JS path", {
  skip: wasmArena() === null ? "no WebAssembly SIMD" : false,
}, () => {
  sets.forEach(([dtype, dtypeLine], si) => {
    const dir = join(root, `set-${si}`);
    writeModelSet(dir, { dtype });
    for (const [name, yaml] of configs(dir, dtypeLine)) {
      it(`${name} on ${dtype} inputs ${dtypeLine.trim() || "(no dtype)"}: same bytes on every path`, async () => {
        const cfg = join(dir, `${name}.yml`);
        writeFileSync(cfg, yaml);
        const out = (tag: string) => join(dir, `out-${name}-${tag}`);
        const bytes = (d: string) => readFileSync(join(d, "model.safetensors"));
        await withEnv({ FUSIONKIT_NO_WASM: "1" }, () =>
          merge(cfg, out("js-whole"), { jobs: 1, chunkElements: 1e9, randomSeed: 3 }),
        );
        await withEnv({ FUSIONKIT_NO_WASM: "1" }, () =>
          merge(cfg, out("js-chunked"), { jobs: 2, chunkElements: 100, randomSeed: 3 }),
        );
        await merge(cfg, out("wasm-1"), { jobs: 1, chunkElements: 100, randomSeed: 3 });
        await withEnv({ FUSIONKIT_STREAM_CACHE_BYTES: "3000" }, () =>
          merge(cfg, out("wasm-2-partial-cache"), { jobs: 2, chunkElements: 10, randomSeed: 3 }),
        );
        // every output block through the writer thread (direct where aligned), and all of it buffered
        await withEnv({ FUSIONKIT_ASYNC_WRITE_BYTES: "0" }, () =>
          merge(cfg, out("wasm-2-writer-thread"), { jobs: 2, chunkElements: 10, randomSeed: 3 }),
        );
        await withEnv({ FUSIONKIT_ASYNC_WRITE_BYTES: "0", FUSIONKIT_DIRECT_IO: "0" }, () =>
          merge(cfg, out("wasm-1-writer-thread-buffered"), { jobs: 1, chunkElements: 100, randomSeed: 3 }),
        );
        const want = bytes(out("js-whole"));
        for (const tag of [
          "js-chunked",
          "wasm-1",
          "wasm-2-partial-cache",
          "wasm-2-writer-thread",
          "wasm-1-writer-thread-buffered",
        ]) {
          assert.ok(bytes(out(tag)).equals(want), `${tag} differs from the whole-tensor JS merge`);
        }
      });
    }
  });
});

describe("merge: a write that fails in a writer thread", {
  skip: wasmArena() === null ? "no WebAssembly SIMD" : false,
}, () => {
  it("fails the merge with an IO_ERROR naming the shard and leaves no output behind", () => {
    // A file-size limit (ulimit -f, 8 KiB) makes the shard's data writes fail with EFBIG; every output block goes
    // through the writer threads (FUSIONKIT_ASYNC_WRITE_BYTES=0, 10-element chunks), so the error must come back
    // from there, through the worker, to the caller.
    const dir = join(root, "efbig");
    writeModelSet(dir, { dtype: "BF16" });
    const cfg = join(dir, "ties.yml");
    writeFileSync(cfg, configs(dir, "dtype: bfloat16\n").find(([name]) => name === "ties")![1]);
    const out = join(dir, "out");
    const mergeUrl = new URL("../../src/engine/merge.ts", import.meta.url).href;
    const script = join(dir, "run.mjs");
    writeFileSync(
      script,
      `const { merge } = await import(${JSON.stringify(mergeUrl)});\n` +
        `try { await merge(${JSON.stringify(cfg)}, ${JSON.stringify(out)}, { jobs: 2, chunkElements: 10 }); ` +
        `console.log("merged"); } catch (e) { console.log(e.code + ": " + e.message); process.exit(3); }\n`,
    );
    const r = spawnSync(
      "bash",
      ["-c", 'ulimit -f 8; exec "$0" --import "$1" "$2"', process.execPath, import.meta.resolve("tsx"), script],
      {
        encoding: "utf8",
        env: { ...process.env, FUSIONKIT_ASYNC_WRITE_BYTES: "0" },
      },
    );
    assert.equal(r.status, 3, `expected a failed merge: ${r.stdout} ${r.stderr}`);
    assert.match(r.stdout, /^IO_ERROR: .*model\.safetensors.*: write failed: EFBIG/m);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.startsWith("out") || f.includes("fusionkit-tmp")),
      [],
      "no output and no temporary directory left",
    );
  });
});
