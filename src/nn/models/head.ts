/**
 * The linear classification head kept apart from the backbones: `weight` [C, D], `bias` [C] (nn.Linear), PyTorch's
 * default init. `permutationSpecWithHead` extends a backbone's spec to backbone + head parameters in one map.
 */
import type * as tf from "@tensorflow/tfjs";
import { initParams, linearDefs } from "./common.js";
import { linear } from "./ops.js";
import type { Model, ParamSpec, Params, PermutationSpec } from "./types.js";

export function headParams(featureDim: number, numClasses: number): ParamSpec[] {
  return linearDefs("", featureDim, numClasses).map((d) => ({
    name: d.name.slice(1),
    shape: d.shape,
    trainable: true,
  }));
}

export function initHead(featureDim: number, numClasses: number, seed: number): Params {
  const defs = linearDefs("head", featureDim, numClasses);
  const p = initParams(seed, defs);
  return { weight: p["head.weight"]!, bias: p["head.bias"]! };
}

/** features [N, D] -> logits [N, C]. */
export function applyHead(head: Params, features: tf.Tensor): tf.Tensor {
  return linear(features, head.weight!, head.bias);
}

/**
 * The model's spec over a map holding its parameters plus the head's under `prefix` (default "head."): the
 * `features` group also permutes axis 1 of `<prefix>weight`, so every group is then a symmetry of the logits.
 */
export function permutationSpecWithHead(model: Model<unknown>, prefix = "head."): PermutationSpec {
  const spec = model.permutationSpec;
  const perms: PermutationSpec["perms"] = {};
  for (const [k, g] of Object.entries(spec.perms)) perms[k] = { ...g, axes: [...g.axes] };
  if (spec.features !== undefined) perms[spec.features]!.axes.push({ param: `${prefix}weight`, axis: 1 });
  return { perms };
}
