/**
 * Optimizers for the training loops: SGD with momentum (PyTorch's form: buf = mu*buf + g, p -= lr*buf), Adam (Kingma
 * & Ba, ICLR 2015) and AdamW (decoupled weight decay, Loshchilov & Hutter, ICLR 2019: p *= 1 - lr*wd before the Adam
 * step). Adam runs the fused kernel on the fusionkit backend (src/nn/optim.ts). The learning rate is set per step, so
 * any schedule works.
 */
import * as tf from "@tensorflow/tfjs";
import { FusionError } from "../errors.js";
import { adam } from "../nn/optim.js";

export type OptimizerName = "sgd" | "adam" | "adamw";
export const OPTIMIZERS: readonly OptimizerName[] = ["sgd", "adam", "adamw"];

export interface OptimizerOptions {
  name: OptimizerName;
  /** SGD momentum (default 0.9). */
  momentum?: number;
  /** AdamW decoupled decay (default 0.01), applied to matrices and filters (rank >= 2), not to biases and norms. */
  weightDecay?: number;
}

export interface StepOptimizer {
  /** Applies one update with learning rate `lr`; `grads` are keyed by variable name. */
  step(lr: number, grads: tf.NamedTensorMap, variables: tf.Variable[]): void;
  dispose(): void;
}

export function parseOptimizerName(value: string, key = "optimizer"): OptimizerName {
  if ((OPTIMIZERS as readonly string[]).includes(value)) return value as OptimizerName;
  throw new FusionError(
    "INVALID_ARGUMENT",
    `${key}: unknown optimizer '${value}' (expected ${OPTIMIZERS.join(", ")})`,
    {
      key,
    },
  );
}

/** tfjs optimizers read `learningRate` on every applyGradients call; this sets it between steps. */
function setLearningRate(opt: tf.Optimizer, lr: number): void {
  (opt as unknown as { learningRate: number }).learningRate = lr;
}

export function createOptimizer(o: OptimizerOptions): StepOptimizer {
  if (o.name === "sgd") {
    const opt = tf.train.momentum(0.1, o.momentum ?? 0.9);
    return {
      step(lr, grads) {
        opt.setLearningRate(lr);
        opt.applyGradients(grads as unknown as Record<string, tf.Variable>);
      },
      dispose: () => {
        opt.dispose();
        // MomentumOptimizer.dispose forgets SGDOptimizer's learning-rate scalar.
        (opt as unknown as { c?: tf.Tensor }).c?.dispose();
      },
    };
  }
  const opt = adam(0.001, 0.9, 0.999, 1e-8);
  const decay = o.name === "adamw" ? (o.weightDecay ?? 0.01) : 0;
  return {
    step(lr, grads, variables) {
      if (decay > 0) {
        const keep = 1 - lr * decay;
        for (const v of variables) {
          if (v.rank < 2 || grads[v.name] === undefined) continue;
          const decayed = tf.tidy(() => v.mul(keep));
          v.assign(decayed);
          decayed.dispose(); // assign takes its own reference
        }
      }
      setLearningRate(opt, lr);
      opt.applyGradients(grads as unknown as Record<string, tf.Variable>);
    },
    dispose: () => opt.dispose(),
  };
}
