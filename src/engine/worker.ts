// Worker-thread entry: runs merge jobs sent by the executor with its own TensorRunner (own file descriptors and
// buffer pool), so tensors merge in parallel without sharing memory.
import { parentPort, workerData } from "node:worker_threads";
import { FusionError } from "../errors.js";
import { type ExecSpec, type TensorJob, TensorRunner } from "./tensor-task.js";

const runner = new TensorRunner(workerData as ExecSpec);
const port = parentPort!;

port.on("message", (msg: TensorJob | "close") => {
  if (msg === "close") {
    // No job left: wait for the writes still in flight, then say so (or report their error).
    try {
      runner.close();
      port.postMessage({ closed: true });
    } catch (e) {
      port.postMessage({ error: errorOf(e), index: -1 });
    }
    port.close();
    return;
  }
  try {
    port.postMessage({ ok: runner.run(msg) });
  } catch (e) {
    port.postMessage({ error: errorOf(e), index: msg.index });
  }
});

function errorOf(e: unknown) {
  return e instanceof FusionError
    ? { code: e.code, message: e.detail, file: e.file, tensor: e.tensor, key: e.key, fusion: true }
    : { message: (e as Error)?.stack ?? String(e), fusion: false };
}
