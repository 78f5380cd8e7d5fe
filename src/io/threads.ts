import { type TransferListItem, Worker } from "node:worker_threads";

/**
 * Start a worker thread on the module next to `from` named `name` (without extension): the .js file in the built
 * package; under tsx (tests, development) the .ts file, after registering tsx's loader in the thread.
 */
export function startThread(
  from: string,
  name: string,
  workerData: unknown,
  transferList?: TransferListItem[],
): Worker {
  if (from.endsWith(".ts")) {
    const url = new URL(`./${name}.ts`, from).href;
    const api = import.meta.resolve("tsx/esm/api");
    const code = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(url)}); })`;
    return new Worker(code, { eval: true, workerData, transferList });
  }
  return new Worker(new URL(`./${name}.js`, from), { workerData, transferList });
}
