// Passthrough: copy one model's tensor, optionally scaled (used for layer stacking / frankenmerges); ref: mergekit/merge_methods/passthrough.py

import { defineMethod } from "../define.js";
import { optNum } from "../params.js";

export const passthrough = defineMethod({
  name: "passthrough",
  title: "Passthrough",
  reference: "mergekit passthrough (layer stacking)",
  mergekitRef: "mergekit/merge_methods/passthrough.py",
  base: "unused",
  models: { min: 1, max: 1 },
  random: false,
  elementwise: () => true,
  parameters: [],
  modelParameters: [
    { name: "scale", type: "number", default: null, description: "optional factor applied to the tensor" },
  ],
  run(ctx) {
    const x = ctx.models[0]!;
    const scale = optNum(ctx.modelParams[0]!, "scale");
    const n = x.data.length;
    const out = new Float32Array(n);
    if (scale === null) out.set(x.data);
    else for (let i = 0; i < n; i++) out[i] = x.data[i]! * scale;
    return { data: out, shape: [...x.shape] };
  },
});
