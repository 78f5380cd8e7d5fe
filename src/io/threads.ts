import { type TransferListItem, Worker } from "node:worker_threads";

/**
 * Where a thread that fails reports it at once, for an owner that waits on shared memory (and so cannot take the
 * thread's 'error' event until it returns to its event loop): `control[word]` is set to 1 and every word of
 * `control` notified; the error's message goes to `port` as `{ slot: -1, error: { message } }`.
 */
export interface FailureSignal {
  /** The path of the Int32Array in workerData (a top-level key). */
  readonly control: string;
  readonly word: number;
  /** The path of a MessagePort in workerData (a top-level key). */
  readonly port: string;
}

/**
 * Start a worker thread on the module next to `from` named `name` (without extension): the .js file in the built
 * package; under tsx (tests, development) the .ts file, after registering tsx's loader in the thread. With
 * `failure`, a module that cannot load or throws at its top level sets the failure word (see FailureSignal).
 */
export function startThread(
  from: string,
  name: string,
  workerData: unknown,
  transferList?: TransferListItem[],
  failure?: FailureSignal,
): Worker {
  const ts = from.endsWith(".ts");
  const url = new URL(`./${name}.${ts ? "ts" : "js"}`, from);
  if (!ts && failure === undefined) return new Worker(url, { workerData, transferList });
  // Resolved only under tsx: an installed package has no tsx (a dev dependency), and resolving it would throw.
  let code = ts
    ? `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`
    : `import(${JSON.stringify(url.href)})`;
  if (failure !== undefined) {
    const c = JSON.stringify(failure.control);
    const p = JSON.stringify(failure.port);
    code +=
      `.catch((e) => { const d = require("node:worker_threads").workerData; const c = d[${c}];` +
      ` try { d[${p}].postMessage({ slot: -1, error: { message: String(e && e.message || e) } }); } catch {}` +
      ` Atomics.store(c, ${failure.word}, 1); for (let i = 0; i < c.length; i++) Atomics.notify(c, i); throw e; })`;
  }
  return new Worker(code, { eval: true, workerData, transferList });
}
