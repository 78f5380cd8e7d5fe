/**
 * Forward + backward time per batch of 128 for each model at its default config (npx tsx test/nn/models/timing.ts
 * [arch...]). Not a test: prints one line per model.
 */
import * as tf from "@tensorflow/tfjs";
import { applyHead, initHead, llama, mlp, resnet20, vgg, vit } from "../../../src/nn/models/index.js";
import type { Model } from "../../../src/nn/models/types.js";
import { initNN } from "../../../src/nn/select.js";

async function main(): Promise<void> {
  const info = await initNN({ log: null });
  const all: Record<string, () => Model<unknown>> = {
    mlp: () => mlp(),
    vgg: () => vgg(),
    "vgg-bn": () => vgg({ batchNorm: true }),
    resnet20: () => resnet20(),
    "resnet20-ln": () => resnet20({ norm: "layernorm" }),
    vit: () => vit(),
    llama: () => llama(),
  };
  const pick = process.argv.slice(2);
  const batch = 128;
  for (const [name, make] of Object.entries(all)) {
    if (pick.length > 0 && !pick.includes(name)) continue;
    const m = make();
    const params = m.init(0);
    const head = initHead(m.featureDim, 10, 1);
    const isLM = m.arch === "llama";
    const x = isLM ? tf.randomUniformInt([8, 64], 0, 256) : tf.randomNormal([batch, 28, 28, 1]);
    const y = tf.oneHot(tf.randomUniformInt([batch], 0, 10), 10);
    const trainable = m.params.filter((p) => p.trainable).map((p) => p.name);
    const step = () =>
      tf.tidy(() => {
        const vars = [...trainable.map((n) => params[n]!), ...(isLM ? [] : [head.weight!, head.bias!])];
        const { value, grads } = tf.valueAndGrads((...ts: tf.Tensor[]) => {
          const p = { ...params };
          trainable.forEach((n, i) => {
            p[n] = ts[i]!;
          });
          const out = m.forward(p, x, { training: true });
          if (out.buffers) tf.dispose(Object.values(out.buffers));
          if (isLM) {
            const logits = out.output.reshape([-1, 256]);
            return tf.losses.softmaxCrossEntropy(tf.oneHot(x.reshape([-1]), 256), logits) as tf.Scalar;
          }
          const h = { weight: ts[ts.length - 2]!, bias: ts[ts.length - 1]! };
          return tf.losses.softmaxCrossEntropy(y, applyHead(h, out.output)) as tf.Scalar;
        })(vars);
        value.dataSync();
        for (const g of grads) g.dataSync();
      });
    for (let i = 0; i < 2; i++) step();
    const reps = Number(process.env.REPS ?? 8);
    const times: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      step();
      times.push(performance.now() - t0);
    }
    times.sort((u, v) => u - v);
    const best = times[0]!;
    const median = times[Math.floor(reps / 2)]!;
    const count = m.params.reduce((a, s) => a + s.shape.reduce((u, v) => u * v, 1), 0);
    const inf = tf.tidy(() => {
      const t1 = performance.now();
      for (let i = 0; i < reps; i++) m.forward(params, x).output.dataSync();
      return (performance.now() - t1) / reps;
    });
    console.log(
      `${info.backend} ${name.padEnd(12)} params ${String(count).padStart(8)}  fwd+bwd min ${best.toFixed(1)} / median ${median.toFixed(1)} ms  fwd ${inf.toFixed(1)} ms  (${isLM ? "8x64 tokens" : `batch ${batch}`})`,
    );
    tf.dispose([...Object.values(params), ...Object.values(head), x, y]);
  }
}

await main();
