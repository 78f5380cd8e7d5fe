import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import {
  encodeIdx,
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_SYSTEM_DIR,
  fashionMnistSearchPath,
  findFashionMnistDir,
  loadFashionMnist,
} from "../../src/data/index.js";
import { FusionError } from "../../src/errors.js";
import { tempDir } from "../helpers/tmp.js";

const tmp = tempDir("fmnist");

/** A tiny dataset directory: `n` 4x4 images whose pixels are (example * 16 + pixel) & 255, labels example % 10. */
function makeDataset(name: string, n: number, options: { gzip?: boolean; labels?: number[] } = {}): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  const pixels = Array.from({ length: n * 16 }, (_, i) => i & 255);
  const labels = options.labels ?? Array.from({ length: n }, (_, i) => i % 10);
  for (const prefix of ["train", "t10k"]) {
    const images = encodeIdx("uint8", [n, 4, 4], pixels);
    const lab = encodeIdx("uint8", [labels.length], labels);
    const ext = options.gzip ? ".gz" : "";
    writeFileSync(join(dir, `${prefix}-images-idx3-ubyte${ext}`), options.gzip ? gzipSync(images) : images);
    writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte${ext}`), options.gzip ? gzipSync(lab) : lab);
  }
  return dir;
}

describe("Fashion-MNIST", () => {
  it("has 10 class names", () => {
    assert.equal(FASHION_MNIST_CLASSES.length, 10);
    assert.equal(FASHION_MNIST_CLASSES[0], "T-shirt/top");
    assert.equal(FASHION_MNIST_CLASSES[9], "Ankle boot");
  });

  it("loads both splits from the system directory and caches them", () => {
    const train = loadFashionMnist("train");
    assert.equal(train.count, 60000);
    assert.equal(train.rows, 28);
    assert.equal(train.cols, 28);
    assert.equal(train.images.length, 60000 * 784);
    assert.equal(train.labels.length, 60000);
    const test = loadFashionMnist("test", FASHION_MNIST_SYSTEM_DIR);
    assert.equal(test.count, 10000);
    assert.equal(loadFashionMnist("train", FASHION_MNIST_SYSTEM_DIR), train, "cached per directory and split");
    let sum = 0;
    for (let i = 0; i < 784; i++) sum += train.images[i]!;
    assert.equal(sum, 76247, "first training image");
  });

  it("searches FASHION_MNIST_DIR alone when set, else the Debian directory, then ./data/fashion-mnist", () => {
    assert.deepEqual(fashionMnistSearchPath({ FASHION_MNIST_DIR: "x/y" }, "/w"), ["/w/x/y"]);
    assert.deepEqual(fashionMnistSearchPath({}, "/w"), [FASHION_MNIST_SYSTEM_DIR, "/w/data/fashion-mnist"]);
    assert.deepEqual(fashionMnistSearchPath({ FASHION_MNIST_DIR: "" }, "/w"), [
      FASHION_MNIST_SYSTEM_DIR,
      "/w/data/fashion-mnist",
    ]);
  });

  it("finds the first existing directory", () => {
    const a = makeDataset("first", 2);
    assert.equal(findFashionMnistDir([join(tmp, "nowhere"), a, FASHION_MNIST_SYSTEM_DIR]), a);
    assert.equal(findFashionMnistDir(fashionMnistSearchPath({ FASHION_MNIST_DIR: a }, "/")), a);
  });

  it("throws FILE_NOT_FOUND with the install hint when no directory exists", () => {
    const path = [join(tmp, "env-points-nowhere"), join(tmp, "masked-system"), join(tmp, "cwd/data/fashion-mnist")];
    assert.throws(
      () => findFashionMnistDir(path),
      (e: unknown) => {
        assert.ok(e instanceof FusionError);
        assert.equal(e.code, "FILE_NOT_FOUND");
        assert.equal(e.file, path[0]);
        assert.match(e.message, /apt-get install dataset-fashion-mnist/);
        assert.match(e.message, /FASHION_MNIST_DIR/);
        for (const p of path) assert.ok(e.message.includes(p), p);
        assert.ok(!e.message.includes("\n"));
        return true;
      },
    );
    assert.throws(() => loadFashionMnist("test", join(tmp, "nope")), /nope: Fashion-MNIST directory does not exist/);
  });

  it("reads plain and gzipped files from a given directory", () => {
    for (const gzip of [false, true]) {
      const dir = makeDataset(gzip ? "gz" : "plain", 5, { gzip });
      const set = loadFashionMnist("test", dir);
      assert.equal(set.count, 5);
      assert.equal(set.rows, 4);
      assert.deepEqual(Array.from(set.labels), [0, 1, 2, 3, 4]);
      assert.equal(set.images[16 * 3 + 2], 50);
    }
  });

  it("names a missing file", () => {
    const dir = join(tmp, "empty");
    mkdirSync(dir);
    assert.throws(
      () => loadFashionMnist("train", dir),
      (e: unknown) =>
        e instanceof FusionError &&
        e.code === "FILE_NOT_FOUND" &&
        e.file === resolve(dir, "train-images-idx3-ubyte") &&
        /missing train-images-idx3-ubyte\[\.gz\]/.test(e.message),
    );
  });

  it("rejects labels that do not match the images", () => {
    const short = makeDataset("short", 4, { labels: [1, 2, 3] });
    assert.throws(
      () => loadFashionMnist("train", short),
      (e: unknown) =>
        e instanceof FusionError && e.code === "SHAPE_MISMATCH" && /3 labels for 4 images/.test(e.message),
    );
    const bad = makeDataset("badlabel", 3, { labels: [1, 10, 3] });
    assert.throws(
      () => loadFashionMnist("test", bad),
      (e: unknown) =>
        e instanceof FusionError &&
        e.file === join(bad, "t10k-labels-idx1-ubyte") &&
        /label 10 of example 1/.test(e.message),
    );
  });

  it("rejects images that are not uint8 [n, rows, cols]", () => {
    const dir = makeDataset("flat", 2);
    writeFileSync(join(dir, "train-images-idx3-ubyte"), encodeIdx("uint8", [2, 16], new Array(32).fill(0)));
    assert.throws(() => loadFashionMnist("train", dir), /train-images-idx3-ubyte: expected uint8 images/);
    assert.throws(() => loadFashionMnist("valid" as "train", dir), /split must be 'train' or 'test'/);
  });
});
