/**
 * ResNet-20 backbone, the CIFAR variant of He et al. 2016 ("Deep Residual Learning for Image Recognition", §4.2):
 * a 3x3 stem, 3 stages x `blocks` basic blocks of widths 16/32/64 times `width`, stride 2 at the start of stages 2
 * and 3, a 1x1 conv + norm shortcut where the shape changes, global average pooling. LayerNorm (over channels, per
 * position) is Git Re-Basin's variant (Ainsworth et al. 2023).
 *
 * Parameters (convs without bias): `conv1.weight`, `<n>1.*`, and per block `layerS.B.conv1.weight`, `layerS.B.<n>1.*`,
 * `layerS.B.conv2.weight`, `layerS.B.<n>2.*`, `layerS.B.shortcut.0.weight` (1x1), `layerS.B.shortcut.1.*`, where
 * `<n>` is `bn` (weight, bias, running_mean, running_var) or `ln` (weight, bias).
 * Captures (NHWC): `conv1.in` (the image), `conv1.act` (stem output), `layerS.B.conv1.in` (block input),
 * `layerS.B.conv1.act` (inner activation), `layerS.B.conv2.in` (same tensor as conv1.act),
 * `layerS.B.shortcut.0.in` (block input, projection blocks only), `layerS.B.act` (block output after add + ReLU).
 * Output: the mean over positions of the last block's output [N, 64·width].
 * Permutations: `P_stageS` — the residual stream of stage S, one permutation shared by the stem (S=1) or the
 * projection shortcut (S>1), every conv2 + norm2 of the stage and every consumer's input axis; `P_layerS.B` — the
 * inner channels of each block. `P_stage3` is the `features` group.
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
  layerNormDefs,
  type ParamDef,
  positiveInt,
  runForward,
  SpecBuilder,
} from "./common.js";
import { batchNorm, conv, layerNorm, spatialMean } from "./ops.js";
import type { Model, Params } from "./types.js";

export interface ResNet20Config {
  /** Width multiplier: stage widths are 16·width, 32·width, 64·width. */
  width: number;
  norm: "batchnorm" | "layernorm";
  /** Basic blocks per stage (3 for ResNet-20). */
  blocks: number;
  inputShape: number[];
}

export const RESNET20_DEFAULTS: ResNet20Config = { width: 1, norm: "batchnorm", blocks: 3, inputShape: [28, 28, 1] };

interface Block {
  prefix: string;
  inC: number;
  outC: number;
  stride: number;
  projection: boolean;
}

export function resnet20(config: Partial<ResNet20Config> = {}): Model<ResNet20Config> {
  const cfg: ResNet20Config = {
    width: config.width ?? RESNET20_DEFAULTS.width,
    norm: config.norm ?? RESNET20_DEFAULTS.norm,
    blocks: config.blocks ?? RESNET20_DEFAULTS.blocks,
    inputShape: [...(config.inputShape ?? RESNET20_DEFAULTS.inputShape)],
  };
  positiveInt(cfg.width, "width");
  positiveInt(cfg.blocks, "blocks");
  if (cfg.norm !== "batchnorm" && cfg.norm !== "layernorm")
    throw new FusionError("INVALID_ARGUMENT", `norm must be "batchnorm" or "layernorm", got ${String(cfg.norm)}`, {
      key: "norm",
    });
  const bn = cfg.norm === "batchnorm";
  const n = bn ? "bn" : "ln";
  const normDefs = (prefix: string, c: number) => (bn ? batchNormDefs(prefix, c) : layerNormDefs(prefix, c));
  const normSuffixes = bn ? BN_SUFFIXES : (["weight", "bias"] as const);
  const widths = [16, 32, 64].map((c) => c * cfg.width);
  const C0 = cfg.inputShape[2]!;

  const defs: ParamDef[] = [...convDefs("conv1", C0, widths[0]!, 3, false), ...normDefs(`${n}1`, widths[0]!)];
  const spec = new SpecBuilder();
  const blocks: Block[] = [];
  spec.group("P_stage1", widths[0]!, `layer1.${cfg.blocks - 1}.act`).out("P_stage1", "conv1", ["weight"]);
  spec.out("P_stage1", `${n}1`, normSuffixes);
  let inC = widths[0]!;
  for (let s = 1; s <= 3; s++) {
    const outC = widths[s - 1]!;
    const stream = `P_stage${s}`;
    const prevStream = `P_stage${Math.max(1, s - 1)}`;
    spec.group(stream, outC, `layer${s}.${cfg.blocks - 1}.act`);
    for (let b = 0; b < cfg.blocks; b++) {
      const prefix = `layer${s}.${b}`;
      const stride = s > 1 && b === 0 ? 2 : 1;
      const projection = stride !== 1 || inC !== outC;
      blocks.push({ prefix, inC, outC, stride, projection });
      const inGroup = b === 0 ? prevStream : stream;
      const inner = `P_${prefix}`;
      defs.push(...convDefs(`${prefix}.conv1`, inC, outC, 3, false), ...normDefs(`${prefix}.${n}1`, outC));
      defs.push(...convDefs(`${prefix}.conv2`, outC, outC, 3, false), ...normDefs(`${prefix}.${n}2`, outC));
      spec.group(inner, outC, `${prefix}.conv1.act`).out(inner, `${prefix}.conv1`, ["weight"]);
      spec.out(inner, `${prefix}.${n}1`, normSuffixes).axis(inner, `${prefix}.conv2.weight`, 1);
      spec.axis(inGroup, `${prefix}.conv1.weight`, 1);
      spec.out(stream, `${prefix}.conv2`, ["weight"]).out(stream, `${prefix}.${n}2`, normSuffixes);
      if (projection) {
        defs.push(...convDefs(`${prefix}.shortcut.0`, inC, outC, 1, false), ...normDefs(`${prefix}.shortcut.1`, outC));
        spec.axis(inGroup, `${prefix}.shortcut.0.weight`, 1).out(stream, `${prefix}.shortcut.0`, ["weight"]);
        spec.out(stream, `${prefix}.shortcut.1`, normSuffixes);
      }
      inC = outC;
    }
  }
  spec.spec.features = "P_stage3";
  // Stage 1 keeps the stem's width, so its stream group was created from conv1 above; the loop only added to it.

  return defineModel({
    arch: "resnet20",
    config: cfg,
    defs,
    inputShape: cfg.inputShape,
    featureDim: widths[2]!,
    permutationSpec: spec.spec,
    forward: (params, x, options) => {
      checkInput(x, cfg.inputShape, "resnet20");
      return runForward(options, (cap, training) => {
        const buffers: Params = {};
        const norm = (t: tf.Tensor, prefix: string): tf.Tensor => {
          if (!bn) return layerNorm(t, get(params, `${prefix}.weight`), get(params, `${prefix}.bias`));
          const r = batchNorm(
            t,
            get(params, `${prefix}.weight`),
            get(params, `${prefix}.bias`),
            get(params, `${prefix}.running_mean`),
            get(params, `${prefix}.running_var`),
            training,
          );
          if (r.mean !== undefined) {
            buffers[`${prefix}.running_mean`] = r.mean;
            buffers[`${prefix}.running_var`] = r.var!;
          }
          return r.y;
        };
        cap.add("conv1.in", x);
        let a = conv(x as tf.Tensor4D, get(params, "conv1.weight"), undefined, { inputGradient: false });
        a = tf.relu(norm(a, `${n}1`)) as tf.Tensor4D;
        cap.add("conv1.act", a);
        for (const B of blocks) {
          const p = B.prefix;
          cap.add(`${p}.conv1.in`, a);
          let h = conv(a, get(params, `${p}.conv1.weight`), undefined, { stride: B.stride, pad: 1 });
          h = tf.relu(norm(h, `${p}.${n}1`)) as tf.Tensor4D;
          cap.add(`${p}.conv1.act`, h);
          cap.add(`${p}.conv2.in`, h);
          h = norm(conv(h, get(params, `${p}.conv2.weight`), undefined, { pad: 1 }), `${p}.${n}2`) as tf.Tensor4D;
          let shortcut: tf.Tensor = a;
          if (B.projection) {
            cap.add(`${p}.shortcut.0.in`, a);
            const s = conv(a, get(params, `${p}.shortcut.0.weight`), undefined, { stride: B.stride, pad: 0 });
            shortcut = norm(s, `${p}.shortcut.1`);
          }
          a = tf.relu(tf.add(h, shortcut)) as tf.Tensor4D;
          cap.add(`${p}.act`, a);
        }
        const output = spatialMean(a);
        return training && bn ? { output, buffers } : { output };
      });
    },
  });
}
