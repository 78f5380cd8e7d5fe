import assert from "node:assert/strict";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { FusionError } from "../../../src/errors.js";
import { saveSafetensors } from "../../../src/io/safetensors-write.js";
import {
  applyPermutation,
  describeModel,
  loadParams,
  modelFromConfig,
  permutationSpecWithHead,
  saveParams,
  validatePermutationSpec,
} from "../../../src/nn/models/index.js";
import type { Params, PermutationSpec } from "../../../src/nn/models/types.js";
import { initNN } from "../../../src/nn/select.js";
import { makeTensor } from "../../../src/tensor/tensor.js";
import { tempDir } from "../../helpers/tmp.js";
import { CASES, close, fullParams, input, isLM, logits, maxAbsDiff, N, randomParams, randomPerm } from "./helpers.js";

before(async () => {
  await initNN({ log: null });
});

const dir = tempDir("models");

function specFor(m: ReturnType<(typeof CASES)[number]["make"]>): PermutationSpec {
  return isLM(m) ? m.permutationSpec : permutationSpecWithHead(m);
}

function randomPerms(spec: PermutationSpec, seed: number): Record<string, Int32Array> {
  const out: Record<string, Int32Array> = {};
  Object.entries(spec.perms).forEach(([k, g], i) => {
    out[k] = randomPerm(g.size, seed + i);
  });
  return out;
}

for (const c of CASES) {
  describe(`model ${c.name}`, () => {
    it("has a valid permutation spec, and activation captures carrying each group's units", () => {
      const m = c.make();
      validatePermutationSpec(m);
      const x = input(m);
      const p = m.init(1);
      const r = m.forward(p, x, { capture: true });
      for (const [name, g] of Object.entries(m.permutationSpec.perms)) {
        if (g.activation === undefined) continue;
        const t = r.captures![g.activation];
        assert.ok(t, `${name}: capture ${g.activation} exists`);
        assert.equal(t.shape[t.rank - 1], g.size, `${name}: last axis of ${g.activation}`);
      }
      if (!isLM(m)) assert.ok(m.permutationSpec.features, "image backbones name their features group");
      tf.dispose([x, r.output, ...Object.values(r.captures!), ...Object.values(p)]);
    });

    it("captures the input of every linear / conv layer, with its shape", () => {
      const m = c.make();
      const x = input(m);
      const p = m.init(1);
      const r = m.forward(p, x, { capture: true });
      const caps = r.captures!;
      for (const spec of m.params) {
        if (!spec.name.endsWith(".weight") || spec.shape.length < 2 || spec.name === "model.embed_tokens.weight")
          continue;
        const prefix = spec.name.slice(0, -".weight".length);
        const t = caps[`${prefix}.in`];
        assert.ok(t, `${prefix}.in captured`);
        assert.equal(t.shape[0], N);
        const fanIn = spec.shape.slice(1).reduce((a, b) => a * b, 1);
        // conv: channels of the NHWC input; linear (and ViT's patch embedding, a GEMM over flattened patches): fan-in
        const last = spec.shape.length === 4 && t.rank === 4 ? spec.shape[1]! : fanIn;
        assert.equal(t.shape[t.rank - 1], last, `${prefix}.in last axis`);
      }
      for (const k of Object.keys(caps)) assert.match(k, /\.(in|act)$/);
      tf.dispose([x, r.output, ...Object.values(caps), ...Object.values(p)]);
    });

    it("random permutations of every group leave the outputs unchanged (eval), and permute the activations", () => {
      const m = c.make();
      const spec = specFor(m);
      const x = input(m);
      const p = fullParams(m, 3);
      const perms = randomPerms(spec, 11);
      const q = applyPermutation(p, spec, perms);
      const a = logits(m, p, x);
      const b = logits(m, q, x);
      const scale = Math.max(
        1,
        tf.tidy(() => tf.max(tf.abs(a)).dataSync()[0]!),
      );
      assert.ok(maxAbsDiff(a, b) < 1e-5 * scale, `max diff ${maxAbsDiff(a, b)} at output scale ${scale}`);
      // Activations of the permuted model are the original ones with the last axis permuted.
      const ra = m.forward(p, x, { capture: true });
      const rb = m.forward(q, x, { capture: true });
      for (const [name, g] of Object.entries(spec.perms)) {
        if (g.activation === undefined) continue;
        const perm = tf.tensor1d(perms[name]!, "int32");
        const expected = tf.gather(ra.captures![g.activation]!, perm, ra.captures![g.activation]!.rank - 1);
        assert.ok(close(expected, rb.captures![g.activation]!), `${name}: ${g.activation} permuted`);
        tf.dispose([perm, expected]);
      }
      tf.dispose([x, a, b, ra.output, rb.output, ...Object.values(ra.captures!), ...Object.values(rb.captures!)]);
      tf.dispose([...Object.values(p), ...Object.values(q)]);
    });

    it("every axis of the spec matters: dropping any one changes the outputs", () => {
      const m = c.make();
      const spec = specFor(m);
      const x = input(m);
      const p = fullParams(m, 5);
      const perms = randomPerms(spec, 23);
      const ref = logits(m, p, x);
      for (const [name, g] of Object.entries(spec.perms)) {
        for (let i = 0; i < g.axes.length; i++) {
          const broken: PermutationSpec = {
            perms: { ...spec.perms, [name]: { ...g, axes: g.axes.filter((_, j) => j !== i) } },
          };
          const q = applyPermutation(p, broken, perms);
          const out = logits(m, q, x);
          const d = maxAbsDiff(ref, out);
          assert.ok(d > 1e-4, `${name} without ${g.axes[i]!.param}#${g.axes[i]!.axis}: outputs moved only ${d}`);
          tf.dispose([out, ...Object.values(q)]);
        }
      }
      tf.dispose([x, ref, ...Object.values(p)]);
    });

    if (c.bn) {
      it("training mode: batch statistics, PyTorch running-stat updates, and permutation-equivariant buffers", () => {
        const m = c.make();
        const spec = specFor(m);
        const x = input(m);
        const p = fullParams(m, 9);
        const perms = randomPerms(spec, 31);
        const q = applyPermutation(p, spec, perms);
        const ra = m.forward(p, x, { training: true });
        const rb = m.forward(q, x, { training: true });
        const buffers = m.params.filter((s) => !s.trainable).map((s) => s.name);
        assert.deepEqual(Object.keys(ra.buffers!).sort(), buffers.sort());
        // Buffers of the permuted model = permuted buffers of the original.
        const bufferSpec = { perms: filterSpec(spec, buffers) };
        const bufferPerms = Object.fromEntries(Object.keys(bufferSpec.perms).map((k) => [k, perms[k]!]));
        const permutedBuffers = applyPermutation(ra.buffers!, bufferSpec, bufferPerms);
        for (const b of buffers) assert.ok(close(permutedBuffers[b]!, rb.buffers![b]!), b);
        const la = logits(m, p, x, true);
        const lb = logits(m, q, x, true);
        assert.ok(close(la, lb));
        // Training output differs from eval output (batch statistics in use).
        const le = logits(m, p, x, false);
        assert.ok(maxAbsDiff(la, le) > 1e-4);
        // The first BatchNorm's update, checked against its definition on the captured conv output.
        const first = buffers[0]!.slice(0, -".running_mean".length);
        const convName = m.arch === "vgg" ? `features.${Number(first.split(".")[1]) - 1}` : "conv1";
        const conv = tf.tidy(() => {
          const w = tf.transpose(p[`${convName}.weight`]!, [2, 3, 1, 0]) as tf.Tensor4D;
          const y = tf.conv2d(x as tf.Tensor4D, w, 1, m.arch === "vgg" ? "same" : 1);
          return p[`${convName}.bias`] ? tf.add(y, p[`${convName}.bias`]!) : y;
        });
        const n = conv.size / conv.shape[3]!;
        const { mean, variance } = tf.moments(conv, [0, 1, 2]);
        const em = tf.add(tf.mul(p[`${first}.running_mean`]!, 0.9), tf.mul(mean, 0.1));
        const ev = tf.add(tf.mul(p[`${first}.running_var`]!, 0.9), tf.mul(variance, (0.1 * n) / (n - 1)));
        assert.ok(maxAbsDiff(em, ra.buffers![`${first}.running_mean`]!) < 1e-5);
        assert.ok(maxAbsDiff(ev, ra.buffers![`${first}.running_var`]!) < 1e-4);
        tf.dispose([x, conv, mean, variance, em, ev, la, lb, le, ra.output, rb.output]);
        tf.dispose([...Object.values(ra.buffers!), ...Object.values(rb.buffers!), ...Object.values(permutedBuffers)]);
        tf.dispose([...Object.values(p), ...Object.values(q)]);
      });
    }

    it("init is deterministic per seed, identical on the cpu backend, PyTorch-like", async () => {
      const m = c.make();
      const a = m.init(42);
      const b = m.init(42);
      const d = m.init(43);
      let differs = false;
      for (const s of m.params) {
        assert.deepEqual(a[s.name]!.shape, s.shape, s.name);
        assert.deepEqual(a[s.name]!.dataSync(), b[s.name]!.dataSync(), s.name);
        if (maxAbsDiff(a[s.name]!, d[s.name]!) > 0) differs = true;
        const v = a[s.name]!.dataSync();
        if (/(norm|bn|ln)[^.]*\.weight$|running_var$/.test(s.name))
          assert.ok(
            v.every((e) => e === 1),
            s.name,
          );
        if (/(norm|bn|ln)[^.]*\.bias$|running_mean$/.test(s.name))
          assert.ok(
            v.every((e) => e === 0),
            s.name,
          );
        if (s.shape.length >= 2 && m.arch !== "vit" && m.arch !== "llama") {
          const bound = 1 / Math.sqrt(s.shape.slice(1).reduce((x, y) => x * y, 1));
          assert.ok(
            v.every((e) => Math.abs(e) <= bound),
            `${s.name} within ±1/sqrt(fan_in)`,
          );
        }
      }
      assert.ok(differs, "another seed gives other values");
      const backend = tf.getBackend();
      await tf.setBackend("cpu");
      const onCpu = m.init(42);
      const values = m.params.map((s) => onCpu[s.name]!.dataSync().slice());
      tf.dispose(Object.values(onCpu));
      await tf.setBackend(backend);
      for (const [i, s] of m.params.entries()) assert.deepEqual(values[i], a[s.name]!.dataSync(), s.name);
      tf.dispose([...Object.values(a), ...Object.values(b), ...Object.values(d)]);
    });

    it("round-trips through safetensors with identical outputs, and rebuilds from its descriptor", () => {
      const m = c.make();
      const p = randomParams(m, 4);
      const path = join(dir, `${c.name}.safetensors`);
      saveParams(path, p, { arch: m.arch });
      const rebuilt = modelFromConfig(JSON.parse(JSON.stringify(describeModel(m))));
      assert.deepEqual(rebuilt.params, m.params);
      const q = loadParams(path, rebuilt);
      const x = input(m);
      const a = m.forward(p, x).output;
      const b = rebuilt.forward(q, x).output;
      assert.deepEqual(a.dataSync(), b.dataSync());
      tf.dispose([x, a, b, ...Object.values(p), ...Object.values(q)]);
    });

    it("loadParams names the file and the tensor when one is missing, misshapen or unexpected", () => {
      const m = c.make();
      const p = m.init(0);
      const entries = m.params.map(
        (s) => [s.name, makeTensor("F32", s.shape, p[s.name]!.dataSync() as Float32Array)] as const,
      );
      const victim = m.params[m.params.length - 1]!.name;
      const missing = join(dir, `${c.name}-missing.safetensors`);
      saveSafetensors(missing, entries.slice(0, -1));
      assert.throws(
        () => loadParams(missing, m),
        (e: unknown) =>
          e instanceof FusionError && e.code === "TENSOR_NOT_FOUND" && e.file === missing && e.tensor === victim,
      );
      const wrong = join(dir, `${c.name}-shape.safetensors`);
      const [name0, t0] = entries[0]!;
      const bad = makeTensor("F32", [t0.data.length], t0.data);
      saveSafetensors(wrong, [[name0, bad], ...entries.slice(1)]);
      assert.throws(
        () => loadParams(wrong, m),
        (e: unknown) =>
          e instanceof FusionError &&
          e.code === "SHAPE_MISMATCH" &&
          e.file === wrong &&
          e.tensor === name0 &&
          /expects/.test(e.message),
      );
      const extra = join(dir, `${c.name}-extra.safetensors`);
      saveSafetensors(extra, [...entries, ["stray.weight", makeTensor("F32", [1], new Float32Array(1))]]);
      assert.throws(
        () => loadParams(extra, m),
        (e: unknown) => e instanceof FusionError && e.file === extra && e.tensor === "stray.weight",
      );
      tf.dispose(Object.values(p));
    });

    it("gradients reach every trainable parameter", () => {
      const m = c.make();
      const p = fullParams(m, 2);
      const x = input(m);
      const names = Object.keys(p).filter(
        (k) => m.params.find((s) => s.name === k)?.trainable ?? k.startsWith("head."),
      );
      const grads = tf.tidy(() =>
        tf.grads((...ts: tf.Tensor[]) => {
          const q = { ...p };
          names.forEach((k, i) => {
            q[k] = ts[i]!;
          });
          const out = logits(m, q, x, true);
          return tf.sum(tf.mul(out, tf.sin(tf.range(0, out.size).reshape(out.shape)))) as tf.Scalar;
        })(names.map((k) => p[k]!)),
      );
      names.forEach((k, i) => {
        const g = grads[i]!;
        assert.deepEqual(g.shape, p[k]!.shape, k);
        assert.ok(tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0]!) > 0, `gradient of ${k} is zero`);
      });
      tf.dispose([x, ...grads, ...Object.values(p)]);
    });

    it("leaves no tensors behind (forward with captures and buffers, and a gradient step)", () => {
      const m = c.make();
      const p = m.init(0);
      const x = input(m);
      const start = tf.memory().numTensors;
      tf.tidy(() => {
        const inside = tf.memory().numTensors;
        const r = m.forward(p, x, { training: true, capture: true });
        const kept = 1 + Object.keys(r.captures!).length + Object.keys(r.buffers ?? {}).length;
        assert.equal(tf.memory().numTensors - inside, kept);
        tf.dispose([r.output, ...Object.values(r.captures!), ...Object.values(r.buffers ?? {})]);
        assert.equal(tf.memory().numTensors, inside);
      });
      const trainable = m.params.filter((s) => s.trainable).map((s) => s.name);
      const g = tf.grads((...ts: tf.Tensor[]) => {
        const q: Params = { ...p };
        trainable.forEach((k, i) => {
          q[k] = ts[i]!;
        });
        const r = m.forward(q, x, { training: true });
        tf.dispose(Object.values(r.buffers ?? {}));
        return tf.sum(r.output) as tf.Scalar;
      })(trainable.map((k) => p[k]!));
      assert.equal(tf.memory().numTensors, start + g.length);
      tf.dispose(g);
      assert.equal(tf.memory().numTensors, start);
      tf.dispose([x, ...Object.values(p)]);
    });
  });
}

function filterSpec(spec: PermutationSpec, names: string[]): PermutationSpec["perms"] {
  const keep = new Set(names);
  const out: PermutationSpec["perms"] = {};
  for (const [k, g] of Object.entries(spec.perms)) {
    const axes = g.axes.filter((a) => keep.has(a.param));
    if (axes.length > 0) out[k] = { size: g.size, axes };
  }
  return out;
}
