import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { FusionError } from "../errors.js";
import { registerDoctor } from "./doctor.js";
import { registerEval } from "./eval.js";
import { registerInspect } from "./inspect.js";
import { registerMerge } from "./merge.js";
import { registerMethods } from "./methods.js";
import { registerTrain } from "./train.js";
import { registerZoo } from "./zoo.js";

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

export function buildProgram(): Command {
  const program = new Command("fusionkit")
    .description("deep model fusion for TypeScript: merge, align, connect, ensemble and benchmark neural networks")
    .version(version(), "-V, --version")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride(); // before the subcommands, which inherit it: the CLI never calls process.exit itself
  registerInspect(program);
  registerMerge(program);
  registerMethods(program);
  registerTrain(program);
  registerEval(program);
  registerZoo(program);
  registerDoctor(program);
  return program;
}

/** Run the CLI; returns the exit code. Errors become one line on stderr. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof FusionError) {
      process.stderr.write(`fusionkit: error [${e.code}]: ${e.message}\n`);
      return 1;
    }
    const err = e as NodeJS.ErrnoException;
    process.stderr.write(`fusionkit: error: ${err?.message ?? String(e)}\n`);
    return err?.code === "EPIPE" ? 0 : 2;
  }
}

const isEntry = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, "/"));
if (isEntry) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
