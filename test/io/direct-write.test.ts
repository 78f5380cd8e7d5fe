import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { FusionError } from "../../src/errors.js";
import { BlockWriter } from "../../src/io/block-writer.js";
import { DIRECT_ALIGN, OutputFile } from "../../src/io/direct-write.js";
import { tempDir } from "../helpers/tmp.js";

// Output writes: the aligned middle of a write may go direct (O_DIRECT), the ends through the page cache, and
// large blocks through the writer thread. Whatever path each byte takes, the file must hold exactly what was
// written, for any offset and length and in any order.

const root = tempDir("direct-write");

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return s / 2 ** 32;
  };
}

/** Cut [0, size) into pieces of random lengths (some far below a page, some several pages), shuffled. */
function pieces(size: number, r: () => number): [number, number][] {
  const out: [number, number][] = [];
  for (let at = 0; at < size; ) {
    const len = Math.min(size - at, r() < 0.3 ? 1 + Math.floor(r() * 300) : Math.floor(r() * 5 * DIRECT_ALIGN) + 1);
    out.push([at, len]);
    at += len;
  }
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** An aligned staging buffer holding data[at, at + len) at the same page offset as the file position. */
function staged(data: Uint8Array, at: number, len: number): Uint8Array {
  const buf = new Uint8Array(new ArrayBuffer(len + 2 * DIRECT_ALIGN));
  const view = buf.subarray(at % DIRECT_ALIGN, (at % DIRECT_ALIGN) + len);
  view.set(data.subarray(at, at + len));
  return view;
}

describe("OutputFile: direct and buffered writes", () => {
  for (const direct of [true, false]) {
    it(`${direct ? "direct where possible" : "buffered only"}: any pieces in any order give the same file`, () => {
      const size = 23 * DIRECT_ALIGN + 1234;
      const r = rng(direct ? 1 : 2);
      const data = new Uint8Array(size).map(() => Math.floor(r() * 256));
      const file = join(root, `out-${direct}`);
      writeFileSync(file, new Uint8Array(size));
      const f = OutputFile.open(file, direct);
      if (!direct) assert.equal(f.isDirect, false);
      for (const [at, len] of pieces(size, r)) {
        // every other piece from memory that is misaligned for its position (so it cannot go direct)
        f.write(r() < 0.5 ? staged(data, at, len) : data.slice(at, at + len), at);
      }
      f.close();
      assert.ok(Buffer.from(readFileSync(file)).equals(Buffer.from(data)));
    });
  }

  it("a file that cannot be opened is an IO_ERROR naming it", () => {
    const file = join(root, "missing", "x.safetensors");
    assert.throws(
      () => OutputFile.open(file, true),
      (e: unknown) => e instanceof FusionError && e.code === "IO_ERROR" && e.file === file,
    );
  });
});

describe("BlockWriter: blocks written by the writer thread", () => {
  it("many more blocks than slots, two files, unaligned offsets, blocks larger than a slot: every byte lands in place", () => {
    const r = rng(7);
    const sizes = [40 * DIRECT_ALIGN + 77, 9 * DIRECT_ALIGN + 3];
    const data = sizes.map((n) => new Uint8Array(n).map(() => Math.floor(r() * 256)));
    const files = sizes.map((n, i) => {
      const f = join(root, `blocks-${i}`);
      writeFileSync(f, new Uint8Array(n));
      return f;
    });
    const w = new BlockWriter(true, { slotBytes: 2 * DIRECT_ALIGN });
    const todo = data.flatMap((d, i) => pieces(d.length, r).map(([at, len]) => ({ i, at, len })));
    // pieces up to five pages, slots of two: most split over several slots, many times the 32 slots in all
    for (const { i, at, len } of todo) w.write(files[i]!, data[i]!.subarray(at, at + len), at);
    w.drain();
    files.forEach((f, i) => {
      assert.ok(Buffer.from(readFileSync(f)).equals(Buffer.from(data[i]!)), `file ${i}`);
    });
    w.close();
    w.close(); // twice: harmless (a merge worker may be told to close twice)
    w.drain(); // nothing in flight after close
    // after close a new write starts a new thread
    w.write(files[1]!, new Uint8Array(5).fill(9), 10);
    w.close();
    assert.deepEqual([...readFileSync(files[1]!).subarray(10, 15)], [9, 9, 9, 9, 9]);
  });

  it("a failed write surfaces as an IO_ERROR naming the file; the writer goes on", () => {
    const w = new BlockWriter(true, { slotBytes: DIRECT_ALIGN });
    const missing = join(root, "no-such-dir", "model.safetensors");
    w.write(missing, new Uint8Array(100), 0);
    assert.throws(
      () => w.drain(),
      (e: unknown) => e instanceof FusionError && e.code === "IO_ERROR" && e.file === missing,
    );
    // the writer goes on after a failure
    const ok = join(root, "after-failure");
    writeFileSync(ok, new Uint8Array(8));
    w.write(ok, new Uint8Array([1, 2, 3]), 2);
    w.drain();
    w.close();
    assert.deepEqual([...readFileSync(ok)], [0, 0, 1, 2, 3, 0, 0, 0]);
  });

  it("a writer thread that never starts is an IO_ERROR at once, with its reason, not a hang", () => {
    const w = new BlockWriter(true, { slotBytes: DIRECT_ALIGN, threadModule: "no-such-writer" });
    const file = join(root, "never");
    writeFileSync(file, new Uint8Array(8));
    const t0 = Date.now();
    w.write(file, new Uint8Array(10), 0);
    assert.throws(
      () => w.drain(),
      (e: unknown) =>
        e instanceof FusionError && e.code === "IO_ERROR" && /writer thread failed: .*no-such-writer/.test(e.detail),
    );
    assert.ok(Date.now() - t0 < 5000, "reported within seconds, not after the 60 s stall time");
    assert.throws(() => w.drain(), FusionError, "and again, at once");
    assert.throws(() => w.close(), FusionError, "close reports it too (and stops the thread)");
    w.close(); // then nothing is left to report
  });

  it("a writer thread that crashes is reported at once with its error, even while every slot is in flight", () => {
    const w = new BlockWriter(true, { slotBytes: DIRECT_ALIGN, threadModule: "../../test/io/fixtures/crash-writer" });
    const file = join(root, "crashed");
    writeFileSync(file, new Uint8Array(8));
    const t0 = Date.now();
    assert.throws(
      () => {
        for (let i = 0; i < 100; i++) w.write(file, new Uint8Array(DIRECT_ALIGN), 0);
        w.drain();
      },
      (e: unknown) => e instanceof FusionError && e.code === "IO_ERROR" && /crashed on purpose/.test(e.detail),
    );
    assert.ok(Date.now() - t0 < 5000, "reported within seconds");
    assert.throws(() => w.close(), FusionError);
    w.close();
  });

  it("a writer thread that lives but writes nothing is an IO_ERROR after the stall time", () => {
    const w = new BlockWriter(true, {
      slotBytes: DIRECT_ALIGN,
      stallMs: 300,
      threadModule: "../../test/io/fixtures/stall-writer",
    });
    const file = join(root, "stalled");
    writeFileSync(file, new Uint8Array(8));
    w.write(file, new Uint8Array(10), 0);
    assert.throws(
      () => w.drain(),
      (e: unknown) => e instanceof FusionError && e.code === "IO_ERROR" && /finished no write/.test(e.detail),
    );
    assert.throws(() => w.close(), FusionError);
    w.close();
  });
});
