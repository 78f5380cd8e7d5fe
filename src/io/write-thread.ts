// Writer-thread entry (see block-writer.ts): takes the blocks its owner thread queues in shared slots, in order,
// writes each in place and marks its slot free (or failed, after posting the error).
import { receiveMessageOnPort, workerData } from "node:worker_threads";
import {
  CLOSE,
  CLOSED,
  DONE,
  FAILED,
  type FileMessage,
  FREE,
  HEAD,
  SLOT_FIELDS,
  type WriterInit,
} from "./block-writer.js";
import { OutputFile } from "./direct-write.js";

const { memory, control, meta, port, directIo, slots } = workerData as WriterInit;
const files = new Map<number, OutputFile>();
const names = new Map<number, string>();

/** The file a request names: announced on the port before the first request that uses it. */
function fileOf(id: number): OutputFile {
  let f = files.get(id);
  if (f !== undefined) return f;
  for (let tries = 0; !names.has(id); tries++) {
    const m = receiveMessageOnPort(port);
    if (m !== undefined) names.set((m.message as FileMessage).id, (m.message as FileMessage).file);
    else if (tries > 1000) throw new Error(`writer thread: file ${id} never announced`);
    else Atomics.wait(control, HEAD, Atomics.load(control, HEAD), 1);
  }
  f = OutputFile.open(names.get(id)!, directIo);
  files.set(id, f);
  return f;
}

for (let tail = 0; ; tail++) {
  // Bounded waits: a thread blocked in Atomics.wait for good could stall its owner's exit when it is terminated.
  while (Atomics.load(control, HEAD) === tail) Atomics.wait(control, HEAD, tail, 200);
  const slot = tail % slots;
  const at = meta[SLOT_FIELDS * slot]!;
  const length = meta[SLOT_FIELDS * slot + 1]!;
  const position = meta[SLOT_FIELDS * slot + 2]!;
  const id = meta[SLOT_FIELDS * slot + 3]!;
  if (id === CLOSE) break;
  try {
    fileOf(id).write(new Uint8Array(memory.buffer, at, length), position);
    Atomics.store(control, slot, FREE);
  } catch (e) {
    const x = e as { detail?: string; message?: string; code?: string; file?: string };
    port.postMessage({ slot, error: { message: x.detail ?? x.message ?? String(e), code: x.code, file: x.file } });
    Atomics.store(control, slot, FAILED);
  }
  Atomics.add(control, DONE, 1);
  Atomics.notify(control, slot);
}
for (const f of files.values()) f.close();
port.close();
Atomics.store(control, CLOSED, 1);
Atomics.notify(control, CLOSED);
