/**
 * Kernel conformance helpers: run the same computation on the selected nn backend (initNN: fusionkit, or whatever
 * FUSIONKIT_BACKEND says) and on tfjs's reference `cpu` backend, from the same seeded inputs, and compare.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initNN } from "../../src/nn/index.js";

let selected: string | undefined;

/** The backend under test (initialised once, silently). */
export async function backendUnderTest(): Promise<string> {
  if (selected === undefined) selected = (await initNN({ log: null })).backend;
  return selected;
}

/** Seeded normal-ish values (xorshift + Box-Muller), so failures reproduce. */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
  return out;
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

type Outputs = tf.Tensor | tf.Tensor[];

async function runOn(backend: string, fn: () => Outputs): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const outs = tf.tidy(fn);
  const list = Array.isArray(outs) ? outs : [outs];
  const values = list.map((t) => Float32Array.from(t.dataSync()));
  tf.dispose(list);
  return values;
}

/** max |a - b| / max(max |b|, tiny) over each output pair: norm-wise relative error. */
export function relError(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length, "output sizes differ");
  let diff = 0;
  let scale = 1e-12;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) !== Number.isNaN(b[i])) return Number.POSITIVE_INFINITY;
    const d = Math.abs(a[i] - b[i]);
    if (d > diff) diff = d;
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

/** Runs fn on the backend under test and on cpu, asserts every output agrees within tol (relative). */
export async function agrees(label: string, fn: () => Outputs, tol = 1e-4): Promise<void> {
  const backend = await backendUnderTest();
  const fast = await runOn(backend, fn);
  const ref = await runOn("cpu", fn);
  await tf.setBackend(backend);
  assert.equal(fast.length, ref.length);
  for (let i = 0; i < fast.length; i++) {
    const err = relError(fast[i], ref[i]);
    assert.ok(err <= tol, `${label} output ${i}: relative error ${err} > ${tol} on ${backend}`);
  }
}

/**
 * Value and gradients of sum(f(inputs) * r) for a fixed random r, so the upstream gradient is not all ones.
 * Returns [f(inputs), d/d input_0, d/d input_1, ...].
 */
export function withGrads(
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: [Float32Array, number[]][],
  seed = 99,
): tf.Tensor[] {
  const xs = inputs.map(([v, shape]) => tf.tensor(v, shape));
  const y = f(...xs);
  const r = tf.tensor(randn(y.size, seed), y.shape);
  const g = tf.grads((...zs: tf.Tensor[]) => tf.sum(tf.mul(f(...zs), r)));
  return [y, ...g(xs)];
}
