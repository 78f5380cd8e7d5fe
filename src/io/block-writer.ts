// Positional writes of large output blocks on a thread of their own: the caller copies a block into one of a few
// shared slots and goes on computing while the writer thread puts it in place (direct-write.ts: O_DIRECT for the
// aligned middle), so the device's time overlaps the merge's instead of adding to it.
import { MessageChannel, type MessagePort, receiveMessageOnPort, type Worker } from "node:worker_threads";
import { FusionError, type FusionErrorCode } from "../errors.js";
import { DIRECT_ALIGN } from "./direct-write.js";
import { startThread } from "./threads.js";

/**
 * What the writer thread starts with: the slot memory; `control` (i32): each slot's state, then at HEAD the number
 * of blocks queued so far; `meta` (f64, SLOT_FIELDS per slot): { at, length, position, file id } of the block in
 * the slot; its end of the channel, on which new files are announced (FileMessage) and errors come back.
 */
export interface WriterInit {
  readonly memory: { readonly buffer: ArrayBufferLike };
  readonly control: Int32Array;
  readonly meta: Float64Array;
  readonly slots: number;
  readonly port: MessagePort;
  readonly directIo: boolean;
}

/** A file the writer has not seen yet, sent before the first block for it. */
export interface FileMessage {
  readonly id: number;
  readonly file: string;
}

/**
 * Slots of SLOT_BYTES: 16 MiB in all, enough to take most of a large tensor's output pass while the device is slow
 * (a merge produces its output in bursts: none during a statistics pass, then a block every ~1 ms).
 */
const SLOTS = 32;
const SLOT_BYTES = 512 << 10;
/** The slot memory of one writer thread (one per merge worker). */
export const WRITER_SLOT_BYTES = SLOTS * SLOT_BYTES;
export const SLOT_FIELDS = 4;
export const FREE = 0;
const BUSY = 1;
export const FAILED = 2;
/** Index in `control` of the queued-block counter. */
export const HEAD = SLOTS;
/** Index in `control` of the flag the writer sets when it has stopped (files closed). */
export const CLOSED = SLOTS + 1;
/** Index in `control` of the number of requests the writer has finished (its sign of life). */
export const DONE = SLOTS + 2;
/** Index in `control` of the flag set when the writer thread failed to load or crashed (threads.ts FailureSignal). */
const DEAD = SLOTS + 3;
const CONTROL_WORDS = SLOTS + 4;
/** A writer that finishes nothing for this long while blocks wait is taken for dead (an IO_ERROR, not a hang). */
const STALL_MS = 60_000;
/** How long `close` waits for the writer thread to stop. */
const CLOSE_WAIT_MS = 10_000;
/** The file id of the request that stops the writer. */
export const CLOSE = -1;

// The project's lib settings include no WebAssembly typings: the one constructor used here.
const SharedMemory = (
  globalThis as unknown as {
    WebAssembly: { Memory: new (d: { initial: number; maximum: number; shared: true }) => { buffer: ArrayBufferLike } };
  }
).WebAssembly.Memory;

export class BlockWriter {
  private thread: Worker | undefined;
  private port: MessagePort | undefined;
  private memory: { buffer: ArrayBufferLike } | undefined;
  // A fresh set per writer thread (a closed thread may still read the last one).
  private control = new Int32Array(new SharedArrayBuffer(4 * CONTROL_WORDS));
  private meta = new Float64Array(new SharedArrayBuffer(8 * SLOT_FIELDS * SLOTS));
  private readonly fileIds = new Map<string, number>();
  private readonly slotBytes: number;
  private readonly stallMs: number;
  private readonly threadModule: string;
  private queued = 0;
  /** Why the writer thread is gone (it failed to start or crashed), or that it stopped making progress. */
  private dead: FusionError | undefined;

  /**
   * `directIo` lets the writer thread use O_DIRECT. Options for tests: the most one slot takes, how long a writer may
   * make no progress before it is taken for dead, and the thread's module (next to this one).
   */
  constructor(
    private readonly directIo: boolean,
    options: { slotBytes?: number; stallMs?: number; threadModule?: string } = {},
  ) {
    // A piece's page offset is kept in its slot (one page spare), so aligned file offsets get aligned memory.
    this.slotBytes = Math.ceil((options.slotBytes ?? SLOT_BYTES) / DIRECT_ALIGN) * DIRECT_ALIGN + DIRECT_ALIGN;
    this.stallMs = options.stallMs ?? STALL_MS;
    this.threadModule = options.threadModule ?? "write-thread";
  }

  /**
   * Queue `data` (copied now) to be written to `file` at `position`, in pieces of at most a slot; waits only while
   * every slot is in flight.
   */
  write(file: string, data: Uint8Array, position: number): void {
    const piece = this.slotBytes - DIRECT_ALIGN;
    for (let at = 0; at < data.length; at += piece)
      this.writePiece(file, data.subarray(at, Math.min(data.length, at + piece)), position + at);
  }

  private writePiece(file: string, data: Uint8Array, position: number): void {
    const { memory, port } = this.start();
    let id = this.fileIds.get(file);
    if (id === undefined) {
      id = this.fileIds.size;
      this.fileIds.set(file, id);
      port.postMessage({ id, file } satisfies FileMessage);
    }
    const slot = this.queued % SLOTS;
    this.wait(slot);
    // Where the file offset is aligned, so is the slot memory (wasm memory is page-aligned): direct writes need both.
    const at = slot * this.slotBytes + (position % DIRECT_ALIGN);
    new Uint8Array(memory.buffer, at, data.length).set(data);
    this.post(slot, at, data.length, position, id);
  }

  /** Wait until every queued block is written; throws the writer's error if one failed. */
  drain(): void {
    if (this.thread === undefined) return;
    if (this.dead !== undefined) throw this.dead;
    for (let slot = 0; slot < SLOTS; slot++) this.wait(slot);
  }

  /** Drain, then stop the writer thread (and wait until it has). Closing twice is harmless. */
  close(): void {
    try {
      this.drain();
    } finally {
      if (this.thread !== undefined && this.dead !== undefined) void this.thread.terminate();
      else if (this.thread !== undefined) {
        const slot = this.queued % SLOTS;
        this.post(slot, 0, 0, 0, CLOSE);
        // Wait for it to stop on its own (its files closed) rather than leave it to be terminated at exit.
        const end = Date.now() + CLOSE_WAIT_MS;
        while (Atomics.load(this.control, CLOSED) === 0 && Date.now() < end) Atomics.wait(this.control, CLOSED, 0, 100);
        this.port?.close();
      }
      this.thread = undefined;
      this.port = undefined;
      this.memory = undefined;
      this.dead = undefined;
    }
  }

  private post(slot: number, at: number, length: number, position: number, id: number): void {
    this.meta.set([at, length, position, id], SLOT_FIELDS * slot);
    Atomics.store(this.control, slot, BUSY);
    this.queued++;
    Atomics.store(this.control, HEAD, this.queued | 0);
    Atomics.notify(this.control, HEAD);
  }

  private start(): { memory: { buffer: ArrayBufferLike }; port: MessagePort } {
    if (this.memory !== undefined && this.port !== undefined) return { memory: this.memory, port: this.port };
    const pages = Math.ceil((SLOTS * this.slotBytes) / 65536);
    const memory = new SharedMemory({ initial: pages, maximum: pages, shared: true });
    const { port1, port2 } = new MessageChannel();
    this.control = new Int32Array(new SharedArrayBuffer(4 * CONTROL_WORDS));
    this.meta = new Float64Array(new SharedArrayBuffer(8 * SLOT_FIELDS * SLOTS));
    this.queued = 0;
    this.fileIds.clear();
    const init: WriterInit = {
      memory,
      control: this.control,
      meta: this.meta,
      slots: SLOTS,
      port: port2,
      directIo: this.directIo,
    };
    this.thread = startThread(import.meta.url, this.threadModule, init, [port2], {
      control: "control",
      word: DEAD,
      port: "port",
    });
    this.thread.unref();
    // Delivered when this thread is back in its event loop (between tensors); the next wait reports it.
    this.thread.on("error", (e: Error) => {
      this.dead ??= new FusionError("IO_ERROR", `the output writer thread failed: ${e.message}`, { cause: e });
    });
    this.memory = memory;
    this.port = port1;
    return { memory, port: port1 };
  }

  private wait(slot: number): void {
    if (this.dead !== undefined) throw this.dead;
    let done = Atomics.load(this.control, DONE);
    let since = Date.now();
    while (Atomics.load(this.control, slot) === BUSY) {
      Atomics.wait(this.control, slot, BUSY, Math.min(1000, this.stallMs));
      if (Atomics.load(this.control, DEAD) !== 0) throw this.died();
      const now = Atomics.load(this.control, DONE);
      if (now !== done) {
        done = now;
        since = Date.now();
      } else if (Atomics.load(this.control, slot) === BUSY && Date.now() - since >= this.stallMs) {
        this.dead = new FusionError(
          "IO_ERROR",
          `the output writer thread has finished no write for ${(this.stallMs / 1000).toFixed(1)} s`,
        );
        throw this.dead;
      }
    }
    if (Atomics.load(this.control, slot) !== FAILED) return;
    Atomics.store(this.control, slot, FREE);
    // The writer posts its error before it marks the slot failed: it is there (possibly after an older one).
    const e = this.errorFor(slot);
    throw new FusionError(
      (e?.code as FusionErrorCode | undefined) ?? "IO_ERROR",
      e?.message ?? "write failed in the writer thread",
      { file: e?.file },
    );
  }

  /** The writer thread failed to load or crashed: its message, from the port, as the writer's death. */
  private died(): FusionError {
    const e = this.errorFor(-1);
    this.dead = new FusionError("IO_ERROR", `the output writer thread failed: ${e?.message ?? "it stopped"}`);
    return this.dead;
  }

  /** The error the writer posted for `slot` (-1: its death), skipping older messages. */
  private errorFor(slot: number): { message: string; code?: string; file?: string } | undefined {
    let m = receiveMessageOnPort(this.port!);
    while (m !== undefined && (m.message as { slot: number }).slot !== slot) m = receiveMessageOnPort(this.port!);
    return (m?.message as { error?: { message: string; code?: string; file?: string } } | undefined)?.error;
  }
}
