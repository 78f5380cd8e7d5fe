/**
 * The functional model contract: a model is a list of named parameters (PyTorch state-dict names and shapes, so a
 * checkpoint is a plain safetensors state dict), a seeded `init`, a pure `forward` over a parameter map, and a
 * permutation spec listing its hidden-unit symmetries (Git Re-Basin's `PermutationSpec`).
 */
import type * as tf from "@tensorflow/tfjs";

/** A named parameter map: state-dict name -> tensor (PyTorch layouts: Linear [out, in], Conv2d [out, in, kh, kw]). */
export type Params = Record<string, tf.Tensor>;

export interface ParamSpec {
  name: string;
  shape: number[];
  /** False for buffers (BatchNorm running statistics): saved and permuted, never given gradients. */
  trainable: boolean;
}

export interface ForwardOptions {
  /** Training mode: BatchNorm uses batch statistics and returns updated running statistics in `buffers`. */
  training?: boolean;
  /** Return named intermediate activations in `captures`. */
  capture?: boolean;
}

export interface ForwardResult {
  /** Classifier backbones: [batch, featureDim] features for a head. The Llama decoder: [batch, seq, vocab] logits. */
  output: tf.Tensor;
  /**
   * With `capture`: `<layer>.in` is the input of every linear / conv layer (named by its parameter prefix, e.g.
   * `layers.0.in`), `<layer>.act` every post-activation.
   */
  captures?: Record<string, tf.Tensor>;
  /** In training mode, the new values of non-trainable buffers (BatchNorm running statistics). */
  buffers?: Params;
}

/** One hidden-unit symmetry: permuting `axis` of every listed parameter by the same permutation leaves outputs unchanged. */
export interface PermutationGroup {
  size: number;
  axes: { param: string; axis: number }[];
  /** The capture whose last axis carries these units (for activation matching), when one exists. */
  activation?: string;
}

export interface PermutationSpec {
  perms: Record<string, PermutationGroup>;
  /**
   * The group whose permutation also permutes the output feature axis of a classifier backbone (ViT's residual
   * stream, ResNet's last stage, the MLP's last hidden layer). It is a symmetry of backbone + head only: a head
   * reading the features must permute its input axis with it (see `permutationSpecWithHead`). Absent when no group
   * reaches the output (the Llama decoder, whose lm_head is part of the model).
   */
  features?: string;
}

export interface Model<C = Record<string, unknown>> {
  /** "mlp" | "vgg" | "resnet20" | "vit" | "llama". */
  arch: string;
  /** Everything needed to rebuild the model (stored in checkpoint sidecars). */
  config: C;
  params: ParamSpec[];
  /** Per-example input shape: [28, 28, 1] (NHWC) for the image models, [seq] token ids for the decoder. */
  inputShape: number[];
  /** Width of `output` for classifier backbones (what a head consumes). */
  featureDim: number;
  init(seed: number): Params;
  forward(params: Params, x: tf.Tensor, options?: ForwardOptions): ForwardResult;
  permutationSpec: PermutationSpec;
}
