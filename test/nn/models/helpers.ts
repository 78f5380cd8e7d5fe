/** Shared fixtures for the model tests: small configs of every architecture, random parameters, inputs, losses. */
import * as tf from "@tensorflow/tfjs";
import { applyHead, initHead, llama, mlp, resnet20, vgg, vit } from "../../../src/nn/models/index.js";
import type { Model, Params } from "../../../src/nn/models/types.js";
import { randn } from "../compare.js";

export interface Case {
  name: string;
  make: () => Model<unknown>;
  /** Has BatchNorm running statistics. */
  bn?: boolean;
}

export const CASES: Case[] = [
  { name: "mlp", make: () => mlp({ hidden: [16, 12] }) },
  { name: "vgg", make: () => vgg({ stages: [[4], [6, 5]], fc: [8] }) },
  {
    name: "vgg-bn-flatten",
    make: () => vgg({ stages: [[4], [6]], batchNorm: true, pool: "flatten", fc: [8, 7] }),
    bn: true,
  },
  { name: "vgg-bn-nofc", make: () => vgg({ stages: [[4], [6]], batchNorm: true, fc: [] }), bn: true },
  { name: "resnet20-bn", make: () => resnet20({ norm: "batchnorm" }), bn: true },
  { name: "resnet20-ln", make: () => resnet20({ norm: "layernorm", blocks: 2, width: 1 }) },
  { name: "vit", make: () => vit({ dim: 16, depth: 2, heads: 2, mlpRatio: 2, patchSize: 7 }) },
  {
    name: "llama-gqa",
    make: () =>
      llama({
        vocabSize: 32,
        hiddenSize: 16,
        intermediateSize: 24,
        numLayers: 2,
        numHeads: 4,
        numKeyValueHeads: 2,
        maxSeq: 8,
      }),
  },
  {
    name: "llama-tied",
    make: () =>
      llama({
        vocabSize: 32,
        hiddenSize: 16,
        intermediateSize: 20,
        numLayers: 1,
        numHeads: 2,
        maxSeq: 8,
        tieEmbeddings: true,
      }),
  },
];

export const N = 3;

export function isLM(m: Model<unknown>): boolean {
  return m.arch === "llama";
}

export function input(m: Model<unknown>, seed = 7): tf.Tensor {
  if (isLM(m)) {
    const ids = Int32Array.from(randn(N * 6, seed), (v) => Math.abs(Math.floor(v * 1000)) % 32);
    return tf.tensor(ids, [N, 6], "int32");
  }
  return tf.tensor(randn(N * 28 * 28, seed), [N, 28, 28, 1]);
}

/** Init values plus seeded noise everywhere (norm weights away from 1, biases and running stats away from 0 / 1), so
 * that a parameter left out of a permutation changes the outputs. */
export function randomParams(m: Model<unknown>, seed: number): Params {
  const base = m.init(seed);
  const out: Params = {};
  m.params.forEach((p, i) => {
    const t = base[p.name]!;
    const noise = tf.tensor(randn(t.size, seed * 1000 + i, 0.1), t.shape);
    let v = tf.add(t, noise);
    if (p.name.endsWith("running_var")) v = tf.add(tf.abs(v), 0.2);
    out[p.name] = v;
    noise.dispose();
  });
  tf.dispose(Object.values(base));
  return out;
}

/** Backbone + head parameters in one map ("head." prefix) for the image models; the model's own for the decoder. */
export function fullParams(m: Model<unknown>, seed: number): Params {
  const p = randomParams(m, seed);
  if (isLM(m)) return p;
  const h = initHead(m.featureDim, 5, seed + 1);
  return { ...p, "head.weight": h.weight!, "head.bias": h.bias! };
}

/** Logits of backbone + head (image models) or of the decoder. */
export function logits(m: Model<unknown>, p: Params, x: tf.Tensor, training = false): tf.Tensor {
  return tf.tidy(() => {
    const r = m.forward(p, x, { training });
    if (isLM(m)) return r.output;
    return applyHead({ weight: p["head.weight"]!, bias: p["head.bias"]! }, r.output);
  });
}

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

/** A seeded random permutation of 0..n-1 (Fisher-Yates over randn-derived draws). */
export function randomPerm(n: number, seed: number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  const r = randn(n, seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor((Math.abs(r[i]!) * 7919) % (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/** |a - b| <= tol · max(1, max|a|): float32 sums reordered by a permutation differ by rounding relative to scale. */
export function close(a: tf.Tensor, b: tf.Tensor, tol = 1e-5): boolean {
  const scale = Math.max(
    1,
    tf.tidy(() => tf.max(tf.abs(a)).dataSync()[0]!),
  );
  return maxAbsDiff(a, b) <= tol * scale;
}
