/**
 * VGG-style CNN backbone (Simonyan & Zisserman 2015, "Very Deep Convolutional Networks"), torchvision-like names.
 *
 * Layout: for each stage, conv3x3 (+ BatchNorm) + ReLU per width, then 2x2 max-pool; then global average pooling
 * (`pool: "avg"`) or flattening in PyTorch's C,H,W order (`pool: "flatten"`); then `fc` Linear + ReLU layers.
 * Parameters follow nn.Sequential indices: `features.k.weight` [O, I, 3, 3] / `.bias` for convs, `features.k+1.*`
 * for their BatchNorm (weight, bias, running_mean, running_var), ReLU and MaxPool take indices too;
 * `classifier.2j.weight` [O, I] / `.bias` for the fc layers (ReLU at 2j+1).
 * Captures: `features.k.in` (NHWC input of conv k), `features.k.act` (NHWC, after its ReLU),
 * `classifier.2j.in` [N, I], `classifier.2j.act` [N, O].
 * Output: the last fc activation, or the pooled features when `fc` is empty.
 * Permutations: `P_features.k` (channels of conv k, with its BatchNorm), `P_classifier.2j` (fc units). With
 * `pool: "flatten"` the last conv's channels are spread over blocks of the first fc's input axis, which a
 * (param, axis) group cannot express, so that group is left out.
 */
import * as tf from "@tensorflow/tfjs";
import { FusionError } from "../../errors.js";
import {
  BN_SUFFIXES,
  batchNormDefs,
  checkInput,
  convDefs,
  defineModel,
  get,
  linearDefs,
  type ParamDef,
  positiveInt,
  runForward,
  SpecBuilder,
} from "./common.js";
import { batchNorm, conv, linear, spatialMean, transpose } from "./ops.js";
import type { Model, Params } from "./types.js";

export interface VGGConfig {
  /** Conv widths per stage; each stage ends with a 2x2 max-pool. */
  stages: number[][];
  batchNorm: boolean;
  pool: "avg" | "flatten";
  /** Hidden fc widths after pooling. */
  fc: number[];
  inputShape: number[];
}

export const VGG_DEFAULTS: VGGConfig = {
  stages: [[32], [64], [128]],
  batchNorm: false,
  pool: "avg",
  fc: [128],
  inputShape: [28, 28, 1],
};

interface ConvLayer {
  index: number;
  inC: number;
  outC: number;
  poolAfter: boolean;
}

export function vgg(config: Partial<VGGConfig> = {}): Model<VGGConfig> {
  const cfg: VGGConfig = {
    stages: (config.stages ?? VGG_DEFAULTS.stages).map((s) => [...s]),
    batchNorm: config.batchNorm ?? VGG_DEFAULTS.batchNorm,
    pool: config.pool ?? VGG_DEFAULTS.pool,
    fc: [...(config.fc ?? VGG_DEFAULTS.fc)],
    inputShape: [...(config.inputShape ?? VGG_DEFAULTS.inputShape)],
  };
  if (cfg.stages.length === 0 || cfg.stages.some((s) => s.length === 0))
    throw new FusionError("INVALID_ARGUMENT", "every stage needs at least one conv", { key: "stages" });
  if (cfg.pool !== "avg" && cfg.pool !== "flatten")
    throw new FusionError("INVALID_ARGUMENT", `pool must be "avg" or "flatten", got ${String(cfg.pool)}`, {
      key: "pool",
    });
  for (const [i, s] of cfg.stages.entries()) for (const [j, c] of s.entries()) positiveInt(c, `stages[${i}][${j}]`);
  for (const [i, h] of cfg.fc.entries()) positiveInt(h, `fc[${i}]`);
  const [H0, W0, C0] = cfg.inputShape as [number, number, number];

  const defs: ParamDef[] = [];
  const spec = new SpecBuilder();
  const convs: ConvLayer[] = [];
  let k = 0;
  let inC = C0;
  let h = H0;
  let w = W0;
  let prevGroup: string | undefined;
  for (const stage of cfg.stages) {
    stage.forEach((outC, j) => {
      const layer = { index: k, inC, outC, poolAfter: j === stage.length - 1 };
      convs.push(layer);
      const g = `P_features.${k}`;
      defs.push(...convDefs(`features.${k}`, inC, outC, 3));
      spec.group(g, outC, `features.${k}.act`).out(g, `features.${k}`);
      if (prevGroup !== undefined) spec.axis(prevGroup, `features.${k}.weight`, 1);
      if (cfg.batchNorm) {
        defs.push(...batchNormDefs(`features.${k + 1}`, outC));
        spec.out(g, `features.${k + 1}`, BN_SUFFIXES);
      }
      prevGroup = g;
      k += cfg.batchNorm ? 3 : 2;
      inC = outC;
    });
    k += 1; // MaxPool2d
    h = Math.floor(h / 2);
    w = Math.floor(w / 2);
  }
  if (h === 0 || w === 0)
    throw new FusionError("INVALID_ARGUMENT", `${cfg.stages.length} max-pools shrink ${H0}x${W0} to nothing`, {
      key: "stages",
    });
  let feat = cfg.pool === "avg" ? inC : inC * h * w;
  if (cfg.pool === "flatten") {
    // Drop the last conv's group: its units sit in blocks of h*w along classifier.0's input axis.
    delete spec.spec.perms[prevGroup!];
    prevGroup = undefined;
  }
  cfg.fc.forEach((units, j) => {
    const name = `classifier.${2 * j}`;
    defs.push(...linearDefs(name, feat, units));
    const g = `P_${name}`;
    spec.group(g, units, `${name}.act`).out(g, name);
    if (prevGroup !== undefined) spec.axis(prevGroup, `${name}.weight`, 1);
    prevGroup = g;
    feat = units;
  });
  if (prevGroup !== undefined) spec.spec.features = prevGroup;

  return defineModel({
    arch: "vgg",
    config: cfg,
    defs,
    inputShape: cfg.inputShape,
    featureDim: feat,
    permutationSpec: spec.spec,
    forward: (params, x, options) => {
      checkInput(x, cfg.inputShape, "vgg");
      return runForward(options, (cap, training) => {
        const buffers: Params = {};
        let a = x as tf.Tensor4D;
        for (const L of convs) {
          const p = `features.${L.index}`;
          cap.add(`${p}.in`, a);
          const first = L.index === 0;
          if (cfg.batchNorm) {
            const y = conv(a, get(params, `${p}.weight`), get(params, `${p}.bias`), { inputGradient: !first });
            const bn = `features.${L.index + 1}`;
            const r = batchNorm(
              y,
              get(params, `${bn}.weight`),
              get(params, `${bn}.bias`),
              get(params, `${bn}.running_mean`),
              get(params, `${bn}.running_var`),
              training,
            );
            if (r.mean !== undefined) {
              buffers[`${bn}.running_mean`] = r.mean;
              buffers[`${bn}.running_var`] = r.var!;
            }
            a = tf.relu(r.y) as tf.Tensor4D;
          } else {
            a = conv(a, get(params, `${p}.weight`), get(params, `${p}.bias`), { relu: true, inputGradient: !first });
          }
          cap.add(`${p}.act`, a);
          if (L.poolAfter) a = tf.maxPool(a, 2, 2, "valid");
        }
        const n = x.shape[0]!;
        let f: tf.Tensor = cfg.pool === "avg" ? spatialMean(a) : tf.reshape(transpose(a, [0, 3, 1, 2]), [n, -1]);
        cfg.fc.forEach((_, j) => {
          const name = `classifier.${2 * j}`;
          cap.add(`${name}.in`, f);
          f = linear(f, get(params, `${name}.weight`), get(params, `${name}.bias`), "relu");
          cap.add(`${name}.act`, f);
        });
        return training && cfg.batchNorm ? { output: f, buffers } : { output: f };
      });
    },
  });
}
