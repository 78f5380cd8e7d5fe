/**
 * Optimizers. `adam()` returns a fused Adam on the fusionkit backend (one kernel per variable instead of ~14, see
 * kernels/adam.ts) and tfjs's own `tf.train.adam` elsewhere; both follow tfjs's update rule.
 */
import * as tf from "@tensorflow/tfjs";
import { FUSION_BACKEND, type FusionBackend } from "./backend.js";
import { ADAM_KERNEL, adamUpdate } from "./kernels/adam.js";

export class FusedAdamOptimizer extends tf.Optimizer {
  static className = "FusionkitAdam";
  private readonly moments = new Map<string, { m: tf.Tensor; v: tf.Tensor }>();

  constructor(
    readonly learningRate: number,
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly epsilon = 1e-7,
  ) {
    super();
  }

  applyGradients(variableGradients: tf.NamedTensorMap | { name: string; tensor: tf.Tensor }[]): void {
    const list = Array.isArray(variableGradients)
      ? variableGradients
      : Object.entries(variableGradients).map(([name, tensor]) => ({ name, tensor }));
    const step = this.iterations + 1;
    const engine = tf.engine();
    for (const { name, tensor: grad } of list) {
      if (grad == null) continue;
      const value = engine.registeredVariables[name];
      let state = this.moments.get(name);
      if (state === undefined) {
        state = tf.tidy(() => ({ m: tf.keep(tf.zerosLike(value)), v: tf.keep(tf.zerosLike(value)) }));
        this.moments.set(name, state);
      }
      const attrs = {
        learningRate: this.learningRate,
        beta1: this.beta1,
        beta2: this.beta2,
        epsilon: this.epsilon,
        step,
      };
      const be = engine.backend as FusionBackend;
      const xv = be.f32(value);
      if (
        value.dtype === "float32" &&
        grad.dtype === "float32" &&
        be.refCount(value.dataId) === 1 &&
        be.pool.exclusive(xv)
      ) {
        adamUpdate(xv, be.f32(grad), be.f32(state.m), be.f32(state.v), xv, attrs);
        continue;
      }
      const next = engine.runKernel(
        ADAM_KERNEL,
        { x: value, g: grad, m: state.m, v: state.v },
        attrs as never,
      ) as tf.Tensor;
      value.assign(next);
      next.dispose();
    }
    this.incrementIterations();
  }

  override dispose(): void {
    super.dispose();
    for (const { m, v } of this.moments.values()) tf.dispose([m, v]);
    this.moments.clear();
  }

  getConfig(): tf.serialization.ConfigDict {
    return { learningRate: this.learningRate, beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon };
  }
}

/** Adam with tfjs's defaults: fused on the fusionkit backend, tf.train.adam on the others. */
export function adam(learningRate = 0.001, beta1 = 0.9, beta2 = 0.999, epsilon?: number): tf.Optimizer {
  if (tf.getBackend() === FUSION_BACKEND)
    return new FusedAdamOptimizer(learningRate, beta1, beta2, epsilon ?? tf.backend().epsilon());
  return tf.train.adam(learningRate, beta1, beta2, epsilon);
}
