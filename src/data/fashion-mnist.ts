/**
 * Fashion-MNIST (Xiao et al. 2017): 60,000 training and 10,000 test 28x28 grey images of 10 clothing classes, read
 * from the four IDX files (gzipped or not). The directory is found on a search path:
 * `$FASHION_MNIST_DIR`, then `/usr/share/datasets/fashion-mnist` (Debian package `dataset-fashion-mnist`), then
 * `./data/fashion-mnist`.
 */
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { FusionError } from "../errors.js";
import { readIdx } from "./idx.js";
import type { ImageSet } from "./types.js";

export type FashionMnistSplit = "train" | "test";

/** The 10 class names, indexed by label. */
export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
]);

export const FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist";
export const FASHION_MNIST_INSTALL_HINT =
  "install it with `apt-get install dataset-fashion-mnist` or set FASHION_MNIST_DIR to a directory holding " +
  "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]";

/**
 * The directories searched: `$FASHION_MNIST_DIR` alone when it is set (a directory the user named that is missing is
 * an error, never a silent fall-back to another copy), else the Debian package's, then `./data/fashion-mnist`.
 */
export function fashionMnistSearchPath(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): string[] {
  const fromEnv = env.FASHION_MNIST_DIR;
  if (fromEnv !== undefined && fromEnv !== "") return [resolve(cwd, fromEnv)];
  return [FASHION_MNIST_SYSTEM_DIR, resolve(cwd, "data/fashion-mnist")];
}

/** The first directory of `searchPath` that exists; a FILE_NOT_FOUND FusionError with the install hint otherwise. */
export function findFashionMnistDir(searchPath: readonly string[] = fashionMnistSearchPath()): string {
  for (const dir of searchPath) {
    if (isDirectory(dir)) return dir;
  }
  throw new FusionError(
    "FILE_NOT_FOUND",
    `Fashion-MNIST not found (searched ${searchPath.join(", ")}); ${FASHION_MNIST_INSTALL_HINT}`,
    { file: searchPath[0] },
  );
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The path of one of the four files in `dir`: `<stem>.gz` if present, else `<stem>`. */
export function fashionMnistFile(dir: string, split: FashionMnistSplit, part: "images" | "labels"): string {
  const stem = `${split === "train" ? "train" : "t10k"}-${part}-${part === "images" ? "idx3" : "idx1"}-ubyte`;
  const gz = join(dir, `${stem}.gz`);
  if (existsSync(gz)) return gz;
  const plain = join(dir, stem);
  if (existsSync(plain)) return plain;
  throw new FusionError("FILE_NOT_FOUND", `missing ${stem}[.gz]; ${FASHION_MNIST_INSTALL_HINT}`, { file: plain });
}

const cache = new Map<string, ImageSet>();

/**
 * One split as raw bytes (cached per process, keyed by directory and split; treat the arrays as read-only).
 * `dir` defaults to the first directory of the search path.
 */
export function loadFashionMnist(split: FashionMnistSplit, dir?: string): ImageSet {
  if (split !== "train" && split !== "test") {
    throw new FusionError("INVALID_ARGUMENT", `Fashion-MNIST split must be 'train' or 'test', got '${String(split)}'`, {
      key: "split",
    });
  }
  const root = resolve(dir ?? findFashionMnistDir());
  const key = `${root}\0${split}`;
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  if (!isDirectory(root)) {
    throw new FusionError("FILE_NOT_FOUND", `Fashion-MNIST directory does not exist; ${FASHION_MNIST_INSTALL_HINT}`, {
      file: root,
    });
  }
  const set = readImageSet(fashionMnistFile(root, split, "images"), fashionMnistFile(root, split, "labels"), 10);
  cache.set(key, set);
  return set;
}

/** Reads an images file (uint8 [n, rows, cols]) and a labels file (uint8 [n], each < numClasses) into an ImageSet. */
export function readImageSet(imagesFile: string, labelsFile: string, numClasses: number): ImageSet {
  const images = readIdx(imagesFile);
  if (images.dtype !== "uint8" || images.dims.length !== 3) {
    throw new FusionError(
      "SHAPE_MISMATCH",
      `expected uint8 images [count, rows, cols], found ${images.dtype} [${images.dims.join(", ")}]`,
      { file: imagesFile },
    );
  }
  const labels = readIdx(labelsFile);
  if (labels.dtype !== "uint8" || labels.dims.length !== 1) {
    throw new FusionError(
      "SHAPE_MISMATCH",
      `expected uint8 labels [count], found ${labels.dtype} [${labels.dims.join(", ")}]`,
      { file: labelsFile },
    );
  }
  const [count, rows, cols] = images.dims as [number, number, number];
  if (labels.dims[0] !== count) {
    throw new FusionError("SHAPE_MISMATCH", `${labels.dims[0]} labels for ${count} images in ${imagesFile}`, {
      file: labelsFile,
    });
  }
  const y = labels.data as Uint8Array;
  for (let i = 0; i < count; i++) {
    if (y[i]! >= numClasses) {
      throw new FusionError("IO_ERROR", `corrupt labels: label ${y[i]} of example ${i} is not below ${numClasses}`, {
        file: labelsFile,
      });
    }
  }
  return { images: images.data as Uint8Array, labels: y, count, rows, cols };
}
