import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { gunzipSync, gzipSync } from "node:zlib";
import {
  encodeIdx,
  FASHION_MNIST_SYSTEM_DIR,
  fashionMnistFile,
  type IdxDtype,
  isGzip,
  parseIdx,
  readIdx,
} from "../../src/data/index.js";
import { FusionError } from "../../src/errors.js";
import { tempDir } from "../helpers/tmp.js";

const dir = tempDir("idx");

function write(name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

/** Asserts that reading `path` throws a FusionError with `code`, naming the file, whose message matches `pattern`. */
function rejects(path: string, code: string, pattern: RegExp): void {
  assert.throws(
    () => readIdx(path),
    (e: unknown) => {
      assert.ok(e instanceof FusionError, String(e));
      assert.equal(e.code, code, e.message);
      assert.equal(e.file, path);
      assert.ok(e.message.startsWith(`${path}: `), e.message);
      assert.match(e.message, pattern);
      assert.ok(!e.message.includes("\n"), "one-line message");
      return true;
    },
  );
}

describe("IDX reader on the real Fashion-MNIST files", () => {
  it("reads train: 60000 x 28 x 28 uint8 images, 6000 labels per class", () => {
    const images = readIdx(fashionMnistFile(FASHION_MNIST_SYSTEM_DIR, "train", "images"));
    assert.equal(images.dtype, "uint8");
    assert.deepEqual(images.dims, [60000, 28, 28]);
    assert.equal(images.data.length, 60000 * 784);
    const labels = readIdx(fashionMnistFile(FASHION_MNIST_SYSTEM_DIR, "train", "labels"));
    assert.deepEqual(labels.dims, [60000]);
    const counts = new Array(10).fill(0);
    for (const l of labels.data) counts[l]++;
    assert.deepEqual(counts, new Array(10).fill(6000));
    assert.deepEqual(Array.from(labels.data.subarray(0, 10)), [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
  });

  it("reads test: 10000 x 28 x 28, 1000 labels per class", () => {
    const images = readIdx(fashionMnistFile(FASHION_MNIST_SYSTEM_DIR, "test", "images"));
    assert.deepEqual(images.dims, [10000, 28, 28]);
    const labels = readIdx(fashionMnistFile(FASHION_MNIST_SYSTEM_DIR, "test", "labels"));
    assert.deepEqual(labels.dims, [10000]);
    const counts = new Array(10).fill(0);
    for (const l of labels.data) counts[l]++;
    assert.deepEqual(counts, new Array(10).fill(1000));
  });

  it("reads the gunzipped file to the same array", () => {
    const gz = fashionMnistFile(FASHION_MNIST_SYSTEM_DIR, "test", "labels");
    const plain = write("t10k-labels-idx1-ubyte", gunzipSync(readFileSync(gz)));
    assert.deepEqual(readIdx(plain), readIdx(gz));
  });
});

describe("IDX reader on synthetic files", () => {
  const cases: [IdxDtype, number[]][] = [
    ["uint8", [0, 1, 127, 128, 255, 7]],
    ["int8", [-128, -1, 0, 1, 127, 5]],
    ["int16", [-32768, -2, 0, 258, 32767, 9]],
    ["int32", [-(2 ** 31), -5, 0, 65538, 2 ** 31 - 1, 3]],
    ["float32", [-1.5, 0, 0.25, 3.5, 2 ** 100, -2]],
    ["float64", [Math.PI, -Math.E, 0, 1e-300, 1e300, 2]],
  ];
  for (const [dtype, values] of cases) {
    it(`round-trips ${dtype}, plain and gzipped`, () => {
      const bytes = encodeIdx(dtype, [2, 3], values);
      const plain = write(`${dtype}.idx`, bytes);
      const gz = write(`${dtype}.idx.gz`, gzipSync(bytes));
      assert.ok(isGzip(readFileSync(gz)) && !isGzip(readFileSync(plain)));
      for (const path of [plain, gz]) {
        const a = readIdx(path);
        assert.equal(a.dtype, dtype);
        assert.deepEqual(a.dims, [2, 3]);
        assert.deepEqual(Array.from(a.data), values);
      }
    });
  }

  it("decodes big-endian bytes written by hand", () => {
    const bytes = Uint8Array.from([0, 0, 0x0b, 1, 0, 0, 0, 2, 0x01, 0x02, 0xff, 0xfe]);
    assert.deepEqual(Array.from(parseIdx(bytes, "hand").data), [258, -2]);
    const ubyte = Uint8Array.from([0, 0, 0x08, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4]);
    const a = parseIdx(ubyte, "hand");
    assert.deepEqual(a.dims, [1, 2, 2]);
    assert.deepEqual(Array.from(a.data), [1, 2, 3, 4]);
  });

  it("accepts zero-length dimensions", () => {
    const a = readIdx(write("empty.idx", encodeIdx("uint8", [0, 28, 28], [])));
    assert.deepEqual(a.dims, [0, 28, 28]);
    assert.equal(a.data.length, 0);
  });
});

describe("IDX validation errors name the file", () => {
  const good = encodeIdx("uint8", [2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8]);
  it("wrong magic", () => {
    const b = good.slice();
    b[0] = 8;
    rejects(write("magic.idx", b), "IO_ERROR", /not an IDX file: magic 08 00 08 03/);
    const c = good.slice();
    c[1] = 1;
    rejects(write("magic2.idx", c), "IO_ERROR", /not an IDX file/);
  });
  it("unsupported dtype byte", () => {
    for (const code of [0x00, 0x0a, 0x0f, 0xff]) {
      const b = good.slice();
      b[2] = code;
      rejects(
        write(`dtype-${code}.idx`, b),
        "UNSUPPORTED_DTYPE",
        new RegExp(`dtype byte 0x${code.toString(16).padStart(2, "0")}`),
      );
    }
  });
  it("zero dimensions", () => {
    rejects(write("ndims0.idx", Uint8Array.from([0, 0, 8, 0, 1])), "SHAPE_MISMATCH", /0 dimensions/);
  });
  it("shorter than the magic", () => {
    rejects(write("tiny.idx", Uint8Array.from([0, 0, 8])), "IO_ERROR", /truncated.*3 bytes/);
    rejects(write("zero.idx", new Uint8Array(0)), "IO_ERROR", /truncated.*0 bytes/);
  });
  it("truncated header", () => {
    rejects(write("header.idx", good.subarray(0, 12)), "IO_ERROR", /truncated.*16-byte header of 3 dimensions/);
  });
  it("truncated data", () => {
    rejects(write("body.idx", good.subarray(0, good.length - 1)), "IO_ERROR", /truncated.*need 24 bytes, found 23/);
    rejects(write("body.idx.gz", gzipSync(good.subarray(0, 17))), "IO_ERROR", /truncated.*need 24 bytes, found 17/);
  });
  it("trailing bytes", () => {
    const b = new Uint8Array(good.length + 3);
    b.set(good);
    rejects(write("trailing.idx", b), "SHAPE_MISMATCH", /size mismatch.*3 trailing/);
  });
  it("size too large for its dims", () => {
    const b = Uint8Array.from([0, 0, 0x0e, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    rejects(write("huge.idx", b), "SHAPE_MISMATCH", /exceed/);
  });
  it("corrupt or truncated gzip", () => {
    const gz = gzipSync(good);
    rejects(write("cut.idx.gz", gz.subarray(0, gz.length - 6)), "IO_ERROR", /corrupt gzip/);
    const garbage = gz.slice();
    garbage.fill(0x55, 10);
    rejects(write("garbage.idx.gz", garbage), "IO_ERROR", /corrupt gzip/);
  });
  it("missing file", () => {
    rejects(join(dir, "absent.idx"), "FILE_NOT_FOUND", /no such file/);
  });
});
