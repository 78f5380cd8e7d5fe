import { cpus, totalmem } from "node:os";
import type { Command } from "commander";

export function registerDoctor(program: Command): void {
  program
    .command("doctor")
    .description("report the runtime: Node, cores, memory and the neural-network backend (with hints to speed it up)")
    .option("--json", "machine-readable output")
    .action(async (opts: { json?: boolean }) => {
      // Loaded here, not at start-up: tfjs takes ~0.5 s to load, which no other command (merge, inspect) needs.
      const { describeNNBackend, initNN } = await import("../nn/select.js");
      const nn = await initNN({ log: null });
      const report = { node: process.version, cores: cpus().length, memoryBytes: totalmem(), nn };
      if (opts.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else {
        process.stdout.write(
          `node ${report.node}, ${report.cores} cores, ${(report.memoryBytes / 2 ** 30).toFixed(1)} GiB\n${describeNNBackend(nn)}\n`,
        );
      }
    });
}
