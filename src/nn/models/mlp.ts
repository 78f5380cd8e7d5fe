/**
 * Multi-layer perceptron backbone (Git Re-Basin's MLP: Ainsworth et al. 2023, "Git Re-Basin", ICLR).
 *
 * Parameters: `layers.i.weight` [h_i, in], `layers.i.bias` [h_i] (PyTorch nn.Linear), input flattened.
 * Captures: `layers.i.in` [N, in] (input of layer i; layer 0 sees the flattened image) and `layers.i.act` [N, h_i]
 * (after ReLU). Output: the last hidden activation [N, h_last].
 * Permutations: `P_layers.i` (hidden units of layer i); the last one is the `features` group.
 */
import { FusionError } from "../../errors.js";
import {
  checkInput,
  defineModel,
  get,
  linearDefs,
  type ParamDef,
  positiveInt,
  runForward,
  SpecBuilder,
} from "./common.js";
import { linear } from "./ops.js";
import type { Model } from "./types.js";

export interface MLPConfig {
  hidden: number[];
  inputShape: number[];
}

export const MLP_DEFAULTS: MLPConfig = { hidden: [512, 512], inputShape: [28, 28, 1] };

export function mlp(config: Partial<MLPConfig> = {}): Model<MLPConfig> {
  const cfg: MLPConfig = {
    hidden: [...(config.hidden ?? MLP_DEFAULTS.hidden)],
    inputShape: [...(config.inputShape ?? MLP_DEFAULTS.inputShape)],
  };
  if (cfg.hidden.length === 0)
    throw new FusionError("INVALID_ARGUMENT", "mlp needs at least one hidden layer", { key: "hidden" });
  for (const [i, h] of cfg.hidden.entries()) positiveInt(h, `hidden[${i}]`);
  const inF = cfg.inputShape.reduce((a, b) => a * b, 1);
  const defs: ParamDef[] = [];
  const spec = new SpecBuilder();
  cfg.hidden.forEach((h, i) => {
    const prev = i === 0 ? inF : cfg.hidden[i - 1]!;
    defs.push(...linearDefs(`layers.${i}`, prev, h));
    spec.group(`P_layers.${i}`, h, `layers.${i}.act`).out(`P_layers.${i}`, `layers.${i}`);
    if (i > 0) spec.axis(`P_layers.${i - 1}`, `layers.${i}.weight`, 1);
  });
  spec.spec.features = `P_layers.${cfg.hidden.length - 1}`;
  return defineModel({
    arch: "mlp",
    config: cfg,
    defs,
    inputShape: cfg.inputShape,
    featureDim: cfg.hidden[cfg.hidden.length - 1]!,
    permutationSpec: spec.spec,
    forward: (params, x, options) => {
      checkInput(x, cfg.inputShape, "mlp");
      return runForward(options, (cap) => {
        let h = x.reshape([x.shape[0]!, inF]);
        for (let i = 0; i < cfg.hidden.length; i++) {
          cap.add(`layers.${i}.in`, h);
          h = linear(h, get(params, `layers.${i}.weight`), get(params, `layers.${i}.bias`), "relu");
          cap.add(`layers.${i}.act`, h);
        }
        return { output: h };
      });
    },
  });
}
