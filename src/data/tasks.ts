/**
 * The fmnist-8 task suite: eight tasks derived from Fashion-MNIST by a pixel transform and a label map, so that
 * fine-tuning one base model on each gives eight related but different experts to merge.
 *
 * | task | pixels | labels |
 * |---|---|---|
 * | fmnist | unchanged | the 10 classes |
 * | rot90 | rotated 90 degrees counter-clockwise (numpy `rot90(img, 1)`) | the 10 classes |
 * | flip | upside down (rows reversed, numpy `flipud`) | the 10 classes |
 * | invert | 255 - p | the 10 classes |
 * | quadrants | the four 14x14 quadrants moved one step clockwise: TL -> TR -> BR -> BL -> TL | the 10 classes |
 * | coarse4 | unchanged | upper body {0,2,4,6} -> 0, lower body / one-piece {1,3} -> 1, footwear {5,7,9} -> 2, bag {8} -> 3 |
 * | first5 | unchanged | classes 0-4 only, labels 0-4 |
 * | last5 | unchanged | classes 5-9 only, labels 0-4 |
 */
import { editDistance, FusionError } from "../errors.js";
import { FASHION_MNIST_CLASSES } from "./fashion-mnist.js";
import type { TaskDef } from "./types.js";

export type Transform = TaskDef["transform"];

/** Copies the image unchanged. */
export const identity: Transform = (src, out, rows, cols) => {
  out.set(src.subarray(0, rows * cols));
};

/** Rotates a square image 90 degrees counter-clockwise, like numpy `rot90(img, 1)`: out[i][j] = src[j][n-1-i]. */
export const rotate90: Transform = (src, out, rows, cols) => {
  if (rows !== cols) throw new FusionError("SHAPE_MISMATCH", `rot90 needs a square image, got ${rows}x${cols}`);
  const n = rows;
  for (let i = 0; i < n; i++) {
    const o = i * n;
    const c = n - 1 - i;
    for (let j = 0; j < n; j++) out[o + j] = src[j * n + c]!;
  }
};

/** Turns the image upside down (rows in reverse order, numpy `flipud`). */
export const flipVertical: Transform = (src, out, rows, cols) => {
  for (let r = 0; r < rows; r++) {
    const s = (rows - 1 - r) * cols;
    const o = r * cols;
    for (let c = 0; c < cols; c++) out[o + c] = src[s + c]!;
  }
};

/** 255 - p for every pixel. */
export const invert: Transform = (src, out, rows, cols) => {
  const n = rows * cols;
  for (let i = 0; i < n; i++) out[i] = 255 - src[i]!;
};

/**
 * Where each quadrant's content goes, indexed by source quadrant (0 top-left, 1 top-right, 2 bottom-left,
 * 3 bottom-right): one step clockwise, TL -> TR, TR -> BR, BR -> BL, BL -> TL. Every quadrant moves; the content
 * inside a quadrant is not rotated.
 */
export const QUADRANT_DESTINATION: readonly number[] = Object.freeze([1, 3, 0, 2]);

/** Permutes the four quadrants of an image with even sides by QUADRANT_DESTINATION. */
export const permuteQuadrants: Transform = (src, out, rows, cols) => {
  if (rows % 2 !== 0 || cols % 2 !== 0) {
    throw new FusionError("SHAPE_MISMATCH", `quadrants needs even image sides, got ${rows}x${cols}`);
  }
  const h = rows / 2;
  const w = cols / 2;
  for (let q = 0; q < 4; q++) {
    const d = QUADRANT_DESTINATION[q]!;
    const sr = (q >> 1) * h;
    const sc = (q & 1) * w;
    const dr = (d >> 1) * h;
    const dc = (d & 1) * w;
    for (let r = 0; r < h; r++) {
      const s = (sr + r) * cols + sc;
      const o = (dr + r) * cols + dc;
      for (let c = 0; c < w; c++) out[o + c] = src[s + c]!;
    }
  }
};

const ALL_CLASSES = Int16Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

function task(
  name: string,
  description: string,
  transform: Transform,
  labelMap: Int16Array,
  classNames: string[],
): TaskDef {
  const map = Int16Array.from(labelMap);
  return Object.freeze({ name, description, numClasses: classNames.length, classNames, transform, labelMap: map });
}

const tenClasses = () => [...FASHION_MNIST_CLASSES];

export const FMNIST: TaskDef = task("fmnist", "Fashion-MNIST, 10 classes", identity, ALL_CLASSES, tenClasses());
export const ROT90: TaskDef = task(
  "rot90",
  "Fashion-MNIST rotated 90 degrees counter-clockwise",
  rotate90,
  ALL_CLASSES,
  tenClasses(),
);
export const FLIP: TaskDef = task("flip", "Fashion-MNIST upside down", flipVertical, ALL_CLASSES, tenClasses());
export const INVERT: TaskDef = task(
  "invert",
  "Fashion-MNIST, inverted pixels (255 - p)",
  invert,
  ALL_CLASSES,
  tenClasses(),
);
export const QUADRANTS: TaskDef = task(
  "quadrants",
  "Fashion-MNIST with the 14x14 quadrants moved one step clockwise",
  permuteQuadrants,
  ALL_CLASSES,
  tenClasses(),
);
export const COARSE4: TaskDef = task(
  "coarse4",
  "4 coarse classes: upper body, lower body / one-piece, footwear, bag",
  identity,
  Int16Array.from([0, 1, 0, 1, 0, 2, 0, 2, 3, 2]),
  ["upper body", "lower body / one-piece", "footwear", "bag"],
);
export const FIRST5: TaskDef = task(
  "first5",
  "classes 0-4 only (T-shirt/top .. Coat)",
  identity,
  Int16Array.from([0, 1, 2, 3, 4, -1, -1, -1, -1, -1]),
  FASHION_MNIST_CLASSES.slice(0, 5),
);
export const LAST5: TaskDef = task(
  "last5",
  "classes 5-9 only (Sandal .. Ankle boot), labels 0-4",
  identity,
  Int16Array.from([-1, -1, -1, -1, -1, 0, 1, 2, 3, 4]),
  FASHION_MNIST_CLASSES.slice(5, 10),
);

/** The fmnist-8 suite, in its canonical order. */
export const FMNIST8: readonly TaskDef[] = Object.freeze([
  FMNIST,
  ROT90,
  FLIP,
  INVERT,
  QUADRANTS,
  COARSE4,
  FIRST5,
  LAST5,
]);

/** A task of the suite by name; an INVALID_ARGUMENT FusionError naming the closest task on a typo. */
export function getTask(name: string): TaskDef {
  const found = FMNIST8.find((t) => t.name === name);
  if (found !== undefined) return found;
  let best = FMNIST8[0]!.name;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const t of FMNIST8) {
    const d = editDistance(String(name).toLowerCase(), t.name);
    if (d < bestDistance) {
      bestDistance = d;
      best = t.name;
    }
  }
  const hint = bestDistance <= Math.max(2, Math.floor(best.length / 2)) ? `did you mean '${best}'? ` : "";
  throw new FusionError(
    "INVALID_ARGUMENT",
    `unknown task '${name}'; ${hint}(known: ${FMNIST8.map((t) => t.name).join(", ")})`,
    { key: "task" },
  );
}
