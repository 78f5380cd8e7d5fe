/** Mean softmax cross-entropy of integer labels, as one differentiable tfjs expression (log-softmax + gather). */
import * as tf from "@tensorflow/tfjs";

export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits);
    const picked = tf.mul(logp, tf.oneHot(labels, logits.shape[1]));
    return tf.neg(tf.div(tf.sum(picked), logits.shape[0])) as tf.Scalar;
  });
}
