import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseMergeConfig } from "../../src/config/index.js";
import { describePlan, tensorPeakBytes, tensorWorkingSet } from "../../src/engine/describe.js";
import { planMerge } from "../../src/engine/plan.js";
import { mergeForm } from "../../src/engine/tensor-task.js";
import { writeSyntheticLlama } from "../../src/synth/llama.js";
import { tempDir } from "../helpers/tmp.js";

// Tensors large enough for every path: the embedding has 512K elements (16 chunks, two I/O blocks).
const root = tempDir("describe");
const shape = { vocabSize: 2048, hiddenSize: 256, intermediateSize: 512, numLayers: 1, numHeads: 4, numKvHeads: 2 };
for (const [i, name] of ["base", "ft1", "ft2"].entries()) {
  writeSyntheticLlama(join(root, name), { shape, dtype: "BF16", baseSeed: 3, finetuneSeed: i === 0 ? undefined : i });
}

function planOf(method: string, params: string) {
  const names = method === "slerp" ? ["ft1"] : ["ft1", "ft2"];
  const models = names.map((m) => `  - model: ${join(root, m)}\n`).join("");
  return planMerge(
    parseMergeConfig(
      `merge_method: ${method}\nbase_model: ${join(root, "base")}\nparameters: ${params}\nmodels:\n${models}`,
    ),
  );
}

describe("dry-run memory estimate", () => {
  it("follows the path each tensor takes: chunks, streamed passes, or the whole tensor", () => {
    const runs: [string, string, "chunked" | "streamed" | "whole"][] = [
      ["linear", "{weight: 0.5}", "chunked"],
      ["task_arithmetic", "{weight: 0.5}", "chunked"],
      ["ties", "{weight: 0.5, density: 0.5}", "streamed"],
      ["dare_ties", "{weight: 0.5, density: 0.5}", "streamed"],
      ["slerp", "{t: 0.5}", "streamed"],
      ["karcher", "{}", "whole"],
    ];
    for (const [method, params, form] of runs) {
      const plan = planOf(method, params);
      const embed = plan.tensors.find((t) => t.name === "model.embed_tokens.weight")!;
      assert.equal(mergeForm(embed, plan.method, 1 << 15), form, method);
      const whole = tensorWorkingSet(embed);
      const est = tensorPeakBytes(embed, plan.method);
      if (form === "whole") assert.equal(est, whole, method);
      else if (form === "chunked") assert.ok(est < whole / 2, `${method}: ${est} vs whole ${whole}`);
      else assert.ok(est < whole, `${method}: ${est} vs whole ${whole}`);
      // a norm vector (2 x 256 elements... one chunk) is merged whole on every path
      const norm = plan.tensors.find((t) => t.name === "model.norm.weight")!;
      assert.equal(tensorPeakBytes(norm, plan.method), tensorWorkingSet(norm), method);
      const d = describePlan(plan, 2);
      assert.ok(d.estimatedPeakBytes >= 2 * est, method);
    }
  });

  it("a streamed top-k estimate holds the gathered keys' bound: an eighth of each model's keys, 4 bytes a key", () => {
    const plan = planOf("ties", "{weight: 0.5, density: 0.5}");
    const embed = plan.tensors.find((t) => t.name === "model.embed_tokens.weight")!;
    const chunked = planOf("linear", "{weight: 0.5}");
    const buffers = tensorPeakBytes(chunked.tensors.find((t) => t.name === embed.name)!, chunked.method);
    assert.ok(tensorPeakBytes(embed, plan.method) >= buffers + 2 * 4 * ((512 * 1024) / 8));
  });
});
