import { cpus, totalmem } from "node:os";
import type { Command } from "commander";
import { wasmArena } from "../wasm/arena.js";
import { nativeKernelsStatus } from "../wasm/native.js";

/** Which kernels merging runs on: WebAssembly SIMD (and the native TIES / DARE kernels where they load), or plain JS. */
function describeMergeKernels(): string {
  if (wasmArena() === null) return "JavaScript (WebAssembly SIMD unavailable or FUSIONKIT_NO_WASM=1)";
  return `WebAssembly SIMD; TIES / DARE over bf16: ${nativeKernelsStatus()}`;
}

export function registerDoctor(program: Command): void {
  program
    .command("doctor")
    .description(
      "report the runtime: Node, cores, memory, the merge kernels and the neural-network backend (with hints to speed it up)",
    )
    .option("--json", "machine-readable output")
    .action(async (opts: { json?: boolean }) => {
      // Loaded here, not at start-up: tfjs takes ~0.5 s to load, which no other command (merge, inspect) needs.
      const { describeNNBackend, initNN } = await import("../nn/select.js");
      const nn = await initNN({ log: null });
      const mergeKernels = describeMergeKernels();
      const report = { node: process.version, cores: cpus().length, memoryBytes: totalmem(), mergeKernels, nn };
      if (opts.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else {
        process.stdout.write(
          `node ${report.node}, ${report.cores} cores, ${(report.memoryBytes / 2 ** 30).toFixed(1)} GiB\n` +
            `merge kernels: ${mergeKernels}\n${describeNNBackend(nn)}\n`,
        );
      }
    });
}
