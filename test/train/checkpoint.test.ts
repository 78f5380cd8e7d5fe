import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { FusionError } from "../../src/errors.js";
import { mlp } from "../../src/nn/models/mlp.js";
import { initNN } from "../../src/nn/select.js";
import { artifactKey, readCheckpoint, readSidecar, sidecarPath, writeCheckpoint } from "../../src/train/checkpoint.js";
import { tempDir } from "../helpers/tmp.js";

describe("checkpoints with sidecars", () => {
  before(async () => {
    await initNN({ log: null });
  });
  const model = mlp({ hidden: [8] });

  it("round-trips weights and sidecar; a different key is a cache miss", () => {
    const dir = tempDir("ckpt");
    const path = join(dir, "m.safetensors");
    const params = model.init(1);
    writeCheckpoint(path, params, {
      format: "fusionkit-checkpoint/1",
      kind: "backbone",
      key: "k1",
      arch: "mlp",
      config: model.config,
      task: "flip",
      steps: 7,
    });
    assert.equal(sidecarPath(path), join(dir, "m.json"));
    const back = readCheckpoint(path, model.params, "k1");
    assert.ok(back !== undefined);
    assert.equal(back.sidecar.steps, 7);
    for (const p of model.params) assert.deepEqual(back.params[p.name]!.dataSync(), params[p.name]!.dataSync());
    assert.equal(readCheckpoint(path, model.params, "other"), undefined);
    assert.equal(readCheckpoint(join(dir, "absent.safetensors"), model.params), undefined);
    tf.dispose([...Object.values(params), ...Object.values(back.params)]);
  });

  it("a broken sidecar is a typed error naming the file", () => {
    const dir = tempDir("ckpt-bad");
    const path = join(dir, "m.safetensors");
    const params = model.init(1);
    writeCheckpoint(path, params, { format: "fusionkit-checkpoint/1", kind: "head" });
    tf.dispose(Object.values(params));
    const side = sidecarPath(path);
    for (const text of [
      "{not json",
      JSON.stringify({ format: "other" }),
      JSON.stringify({ format: "fusionkit-checkpoint/1", kind: "x" }),
    ]) {
      writeFileSync(side, text);
      assert.throws(
        () => readSidecar(path),
        (e: unknown) => e instanceof FusionError && e.code === "CHECKPOINT_INVALID" && e.message.includes(side),
      );
    }
    assert.ok(readFileSync(path).length > 0, "weights untouched");
  });

  it("artifact keys ignore key order but not values", () => {
    assert.equal(artifactKey({ a: 1, b: { c: [1, 2] } }), artifactKey({ b: { c: [1, 2] }, a: 1 }));
    assert.notEqual(artifactKey({ a: 1 }), artifactKey({ a: 2 }));
  });
});
