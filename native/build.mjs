// Builds the optional native addons under native/ with node-gyp (npm's own, on PATH in lifecycle scripts). Never
// fails the install: an addon that does not build (no compiler, no library headers) is reported in one line and
// fusionkit runs without it (see src/nn/blas.ts).
//   node native/build.mjs           build every addon
//   node native/build.mjs --quiet   the same without the success line
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ADDONS = [
  {
    dir: "dnnl-gemm",
    what: "oneDNN sgemm (faster GEMM for the nn backend)",
    hint: "apt-get install libdnnl-dev, then npm rebuild fusionkit",
  },
  {
    dir: "merge-kernels",
    what: "AVX-512 merge kernels (faster TIES / DARE over bf16 checkpoints)",
    hint: "install a C compiler (apt-get install build-essential), then npm rebuild fusionkit",
  },
];

const root = fileURLToPath(new URL(".", import.meta.url));
const quiet = process.argv.includes("--quiet");
for (const addon of ADDONS) {
  const cwd = `${root}${addon.dir}`;
  if (!existsSync(`${cwd}/binding.gyp`)) continue;
  // npm's node-gyp: named in lifecycle scripts, else the copy beside this Node's npm
  const bundled = join(dirname(process.execPath), "..", "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js");
  const gyp = process.env.npm_config_node_gyp || (existsSync(bundled) ? bundled : undefined);
  const [cmd, args] = gyp ? [process.execPath, [gyp, "rebuild"]] : ["node-gyp", ["rebuild"]];
  // outside npm: this Node's own headers when it has them (npm passes its nodedir setting itself)
  const prefix = join(dirname(process.execPath), "..");
  if (!process.env.npm_config_nodedir && existsSync(join(prefix, "include", "node", "node_api.h")))
    args.push(`--nodedir=${prefix}`);
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  if (r.status === 0) {
    if (!quiet) console.log(`fusionkit: built ${addon.what}`);
    continue;
  }
  const lines = `${r.stderr}${r.stdout}`.split("\n");
  const why =
    r.error?.message ??
    (lines.find((l) => /error:|cannot find -l/i.test(l)) ||
      lines.find((l) => /ERR! stack Error:/.test(l))?.replace(/.*ERR! stack Error:/, "") ||
      `node-gyp exit ${r.status}`);
  console.log(`fusionkit: optional ${addon.what} not built (${why.trim()}); hint: ${addon.hint}`);
}
