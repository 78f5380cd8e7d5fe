// Worker-thread entry: runs merge jobs sent by the executor with its own TensorRunner (own file descriptors and
// buffer pool), so tensors merge in parallel without sharing memory.
import { parentPort, workerData } from "node:worker_threads";
import { FusionError } from "../errors.js";
import { type ExecSpec, type TensorJob, TensorRunner } from "./tensor-task.js";

const runner = new TensorRunner(workerData as ExecSpec);
const port = parentPort!;

port.on("message", (msg: TensorJob | "close") => {
  if (msg === "close") {
    runner.close();
    port.close();
    return;
  }
  try {
    port.postMessage({ ok: runner.run(msg) });
  } catch (e) {
    const err =
      e instanceof FusionError
        ? { code: e.code, message: e.detail, file: e.file, tensor: e.tensor, key: e.key, fusion: true }
        : { message: (e as Error)?.stack ?? String(e), fusion: false };
    port.postMessage({ error: err, index: msg.index });
  }
});
