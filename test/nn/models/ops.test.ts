import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { FusionError } from "../../../src/errors.js";
import { blas } from "../../../src/nn/blas.js";
import { selfAttention } from "../../../src/nn/models/attention.js";
import {
  batchNormTrain,
  constLinear,
  embedding,
  firstToken,
  gelu,
  layerNorm,
  prependToken,
  scaledSoftmax,
  spatialMean,
  transpose,
} from "../../../src/nn/models/fast-ops.js";
import {
  applyHead,
  applyPermutation,
  headParams,
  identityPermutations,
  initHead,
  llama,
  mlp,
  modelFromConfig,
  validatePermutationSpec,
} from "../../../src/nn/models/index.js";
import { initNN } from "../../../src/nn/select.js";
import { randn } from "../compare.js";
import { maxAbsDiff } from "./helpers.js";

before(async () => {
  await initNN({ log: null });
});

function t(shape: number[], seed: number): tf.Tensor {
  return tf.tensor(
    randn(
      shape.reduce((a, b) => a * b, 1),
      seed,
    ),
    shape,
  );
}

/** Values and gradients (of a fixed random projection of the output) of `fast` and `reference` agree. */
function agree(fast: (...xs: tf.Tensor[]) => tf.Tensor, reference: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[]) {
  const a = fast(...xs);
  const b = reference(...xs);
  assert.deepEqual(a.shape, b.shape);
  assert.ok(maxAbsDiff(a, b) < 1e-4, `values differ by ${maxAbsDiff(a, b)}`);
  const proj = t(a.shape, 99);
  const ga = tf.grads((...ys: tf.Tensor[]) => tf.sum(tf.mul(fast(...ys), proj)) as tf.Scalar)(xs);
  const gb = tf.grads((...ys: tf.Tensor[]) => tf.sum(tf.mul(reference(...ys), proj)) as tf.Scalar)(xs);
  ga.forEach((g, i) => {
    assert.ok(maxAbsDiff(g, gb[i]!) < 1e-3, `gradient ${i} differs by ${maxAbsDiff(g, gb[i]!)}`);
  });
  tf.dispose([a, b, proj, ...ga, ...gb, ...xs]);
}

describe("fast ops agree with tfjs compositions (values and gradients)", () => {
  it("transpose", () => {
    agree(
      (x) => transpose(x, [2, 0, 3, 1, 4]),
      (x) => tf.transpose(x, [2, 0, 3, 1, 4]),
      [t([3, 5, 3, 2, 4], 1)],
    );
    agree(
      (x) => transpose(x, [2, 3, 1, 0]),
      (x) => tf.transpose(x, [2, 3, 1, 0]),
      [t([6, 4, 3, 3], 2)],
    );
  });
  it("layerNorm", () => {
    const ref = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => {
      const { mean, variance } = tf.moments(x, -1, true);
      return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), w), b);
    };
    agree((x, w, b) => layerNorm(x!, w!, b!), ref, [t([4, 5, 8], 3), t([8], 4), t([8], 5)]);
  });
  it("batchNormTrain", () => {
    const ref = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => {
      const { mean, variance } = tf.moments(x, [0, 1, 2]);
      return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), w), b);
    };
    agree((x, w, b) => batchNormTrain(x!, w!, b!, 1e-5).y, ref, [t([3, 4, 5, 6], 6), t([6], 7), t([6], 8)]);
  });
  it("gelu (tanh approximation)", () => {
    const ref = (x: tf.Tensor) =>
      tf.mul(
        tf.mul(x, 0.5),
        tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3)))))),
      );
    agree((x) => gelu(x!), ref, [t([7, 9], 9)]);
  });
  it("scaledSoftmax, firstToken and constLinear", () => {
    agree(
      (x) => scaledSoftmax(x!, 0.25),
      (x) => tf.softmax(tf.mul(x!, 0.25)),
      [t([6, 5, 7], 13)],
    );
    agree(
      (x) => firstToken(x!),
      (x) => tf.reshape(tf.slice(x!, [0, 0, 0], [3, 1, 4]), [3, 4]),
      [t([3, 5, 4], 14)],
    );
    const xs = t([6, 5], 15);
    const values = Float32Array.from(xs.dataSync());
    agree(
      (w, b) => constLinear(values, 6, 5, w!, b!),
      (w, b) => tf.add(tf.matMul(xs, w!, false, true), b!),
      [t([4, 5], 16), t([4], 17)],
    );
    xs.dispose();
  });
  it("selfAttention (strided sgemm per sample and head) matches composed tfjs attention", (t_) => {
    const sgemm = blas()?.sgemm;
    if (sgemm === undefined) {
      t_.skip("native BLAS (nblas) not installed");
      return;
    }
    const [n, T, heads, dh] = [3, 5, 2, 4];
    const D = heads * dh;
    const scale = 1 / Math.sqrt(dh);
    const composed = (qkv: tf.Tensor) => {
      const [q, k, v] = tf
        .unstack(tf.transpose(tf.reshape(qkv, [n, T, 3, heads, dh]), [2, 0, 3, 1, 4]))
        .map((p) => tf.reshape(p, [n * heads, T, dh])) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
      const att = tf.softmax(tf.mul(tf.matMul(q, k, false, true), scale));
      return tf.reshape(tf.transpose(tf.reshape(tf.matMul(att, v), [n, heads, T, dh]), [0, 2, 1, 3]), [n * T, D]);
    };
    agree((x) => selfAttention(x!, { n, tokens: T, heads, headDim: dh, scale }, sgemm), composed, [
      t([n * T, 3 * D], 21),
    ]);
    const wrong = t([n * T, 2 * D], 26);
    assert.throws(
      () => selfAttention(wrong, { n, tokens: T, heads, headDim: dh, scale }, sgemm),
      (e: unknown) => e instanceof FusionError && e.code === "SHAPE_MISMATCH" && /qkv has 240 values/.test(e.message),
    );
    wrong.dispose();
  });
  it("pooled outputs of the fast ops do not change values computed earlier in the same tape", () => {
    // Every fast op draws its output from the fusionkit pool; a buffer recycled too early would corrupt x's gradient.
    const x = t([4, 6], 22);
    const w = t([6], 23);
    const b = t([6], 24);
    const f = (a: tf.Tensor) => {
      const h = gelu(layerNorm(a, w, b));
      tf.dispose(tf.tidy(() => gelu(transpose(h, [1, 0])))); // churn the pool mid-tape
      return layerNorm(gelu(h), w, b);
    };
    const ref = (a: tf.Tensor) => layerNorm(gelu(gelu(layerNorm(a, w, b))), w, b);
    const proj = t([4, 6], 25);
    const g1 = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(f(a), proj)) as tf.Scalar)(x);
    const g2 = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(ref(a), proj)) as tf.Scalar)(x);
    assert.equal(maxAbsDiff(g1, g2), 0);
    tf.dispose([x, w, b, proj, g1, g2]);
  });
  it("embedding", () => {
    const ids = Int32Array.from([3, 0, 3, 5, 1]);
    agree(
      (w) => embedding(w!, ids),
      // one-hot rows times the table: the same lookup, with a gradient every backend has (tf.gather's needs
      // UnsortedSegmentSum, which tfjs-wasm lacks)
      (w) => tf.matMul(tf.oneHot(tf.tensor1d(ids, "int32"), 6), w!),
      [t([6, 4], 18)],
    );
  });
  it("prependToken and spatialMean", () => {
    agree(
      (c, x) => prependToken(c!, x!),
      (c, x) => tf.concat([tf.tile(c!, [x!.shape[0]!, 1, 1]), x!], 1),
      [t([1, 1, 4], 10), t([3, 5, 4], 11)],
    );
    agree(
      (x) => spatialMean(x!),
      (x) => tf.mean(x!, [1, 2]),
      [t([3, 4, 5, 6], 12)],
    );
  });
});

describe("permutations", () => {
  it("applyPermutation is pure, returns fresh tensors, and rejects bad permutations and unknown groups", () => {
    const m = mlp({ hidden: [4, 3], inputShape: [2] });
    const p = m.init(1);
    const before = p["layers.0.weight"]!.dataSync().slice();
    const perms = identityPermutations(m.permutationSpec);
    perms["P_layers.0"] = Int32Array.from([2, 0, 3, 1]);
    const q = applyPermutation(p, m.permutationSpec, perms);
    assert.deepEqual(p["layers.0.weight"]!.dataSync(), before);
    for (const k of Object.keys(p)) assert.notEqual(q[k], p[k]);
    // new row i = old row perm[i]
    assert.deepEqual(
      Array.from(q["layers.0.bias"]!.dataSync()),
      [2, 0, 3, 1].map((i) => p["layers.0.bias"]!.dataSync()[i]!),
    );
    tf.dispose(Object.values(q));
    assert.throws(
      () => applyPermutation(p, m.permutationSpec, { "P_layers.0": Int32Array.from([0, 0, 1, 2]) }),
      (e: unknown) => e instanceof FusionError && e.key === "P_layers.0",
    );
    assert.throws(
      () => applyPermutation(p, m.permutationSpec, { nope: Int32Array.from([0]) }),
      (e: unknown) => e instanceof FusionError && e.key === "nope",
    );
    tf.dispose(Object.values(p));
  });

  it("validatePermutationSpec catches wrong sizes, unknown parameters and doubly-permuted axes", () => {
    const m = mlp({ hidden: [4, 3], inputShape: [2] });
    const g = m.permutationSpec.perms["P_layers.0"]!;
    const withGroup = (group: typeof g) => ({ ...m, permutationSpec: { perms: { "P_layers.0": group } } });
    assert.throws(
      () => validatePermutationSpec(withGroup({ ...g, size: 5 })),
      (e: unknown) => e instanceof FusionError && e.code === "SHAPE_MISMATCH",
    );
    assert.throws(
      () => validatePermutationSpec(withGroup({ ...g, axes: [...g.axes, { param: "layers.9.weight", axis: 0 }] })),
      (e: unknown) => e instanceof FusionError && e.tensor === "layers.9.weight",
    );
    assert.throws(
      () => validatePermutationSpec(withGroup({ ...g, axes: [...g.axes, g.axes[0]!] })),
      (e: unknown) => e instanceof FusionError && /both/.test(e.message),
    );
  });
});

describe("head", () => {
  it("specs, deterministic init and logits", () => {
    assert.deepEqual(headParams(8, 3), [
      { name: "weight", shape: [3, 8], trainable: true },
      { name: "bias", shape: [3], trainable: true },
    ]);
    const a = initHead(8, 3, 5);
    const b = initHead(8, 3, 5);
    assert.deepEqual(a.weight!.dataSync(), b.weight!.dataSync());
    assert.ok(a.weight!.dataSync().every((v) => Math.abs(v) <= 1 / Math.sqrt(8)));
    const f = t([2, 8], 1);
    const out = applyHead(a, f);
    const ref = tf.add(tf.matMul(f, a.weight!, false, true), a.bias!);
    assert.ok(maxAbsDiff(out, ref) < 1e-6);
    tf.dispose([f, out, ref, ...Object.values(a), ...Object.values(b)]);
  });
});

describe("llama", () => {
  const cfg = {
    vocabSize: 32,
    hiddenSize: 16,
    intermediateSize: 24,
    numLayers: 2,
    numHeads: 4,
    numKeyValueHeads: 2,
    maxSeq: 8,
  };
  it("is causal: changing a later token leaves earlier logits unchanged", () => {
    const m = llama(cfg);
    const p = m.init(3);
    const a = tf.tensor([[1, 2, 3, 4, 5, 6]], [1, 6], "int32");
    const b = tf.tensor([[1, 2, 3, 9, 5, 6]], [1, 6], "int32");
    const la = m.forward(p, a).output;
    const lb = m.forward(p, b).output;
    const early = maxAbsDiff(tf.slice(la, [0, 0, 0], [1, 3, 32]), tf.slice(lb, [0, 0, 0], [1, 3, 32]));
    const late = maxAbsDiff(tf.slice(la, [0, 3, 0], [1, 3, 32]), tf.slice(lb, [0, 3, 0], [1, 3, 32]));
    assert.equal(early, 0);
    assert.ok(late > 0);
    tf.dispose([a, b, la, lb, ...Object.values(p)]);
  });
  it("grouped kv heads equal full heads with k/v rows repeated (Hugging Face repeat_kv)", () => {
    const g = llama(cfg);
    const full = llama({ ...cfg, numKeyValueHeads: 4 });
    const p = g.init(4);
    const dh = 4;
    const repeat = (w: tf.Tensor) => tf.reshape(tf.tile(tf.reshape(w, [2, 1, dh, 16]), [1, 2, 1, 1]), [4 * dh, 16]); // kv head j -> heads 2j, 2j+1
    const q: typeof p = { ...p };
    for (let i = 0; i < 2; i++)
      for (const s of ["k", "v"])
        q[`model.layers.${i}.self_attn.${s}_proj.weight`] = repeat(p[`model.layers.${i}.self_attn.${s}_proj.weight`]!);
    const x = tf.tensor([[3, 1, 4, 1, 5, 9, 2, 6]], [1, 8], "int32");
    const a = g.forward(p, x).output;
    const b = full.forward(q, x).output;
    assert.ok(maxAbsDiff(a, b) < 1e-5);
    tf.dispose([x, a, b, ...Object.values(p), ...Object.values(q).filter((v) => !Object.values(p).includes(v))]);
  });
  it("rejects float or over-long input", () => {
    const m = llama(cfg);
    const p = m.init(0);
    assert.throws(() => m.forward(p, tf.zeros([1, 4])), FusionError);
    assert.throws(() => m.forward(p, tf.zeros([1, 9], "int32")), FusionError);
    tf.dispose(Object.values(p));
  });
});

describe("modelFromConfig", () => {
  it("rejects unknown architectures and invalid configs with typed errors", () => {
    assert.throws(
      () => modelFromConfig({ arch: "gpt9", config: {} }),
      (e: unknown) => e instanceof FusionError && e.key === "arch",
    );
    assert.throws(
      () => modelFromConfig({ arch: "vit", config: { patchSize: 5 } }),
      (e: unknown) => e instanceof FusionError && e.key === "patchSize",
    );
    assert.throws(
      () => modelFromConfig({ arch: "mlp", config: { hidden: [0] } }),
      (e: unknown) => e instanceof FusionError && e.key === "hidden[0]",
    );
  });
});
