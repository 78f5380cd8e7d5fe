/** Classification metrics from logits, one pass per batch: correct count, summed cross-entropy, summed entropy. */

export interface MetricSums {
  count: number;
  correct: number;
  /** Sum of -log p(label), nats. */
  loss: number;
  /** Sum of the predictive distribution's entropy, nats. */
  entropy: number;
}

export function emptySums(): MetricSums {
  return { count: 0, correct: 0, loss: 0, entropy: 0 };
}

/** Adds a batch of `logits` (rows x classes, row-major) with integer `labels` to `sums`. */
export function accumulate(sums: MetricSums, logits: Float32Array, labels: Int32Array, classes: number): void {
  const rows = labels.length;
  for (let r = 0; r < rows; r++) {
    const o = r * classes;
    let max = -Infinity;
    let arg = 0;
    for (let k = 0; k < classes; k++) {
      const v = logits[o + k]!;
      if (v > max) {
        max = v;
        arg = k;
      }
    }
    let z = 0;
    for (let k = 0; k < classes; k++) z += Math.exp(logits[o + k]! - max);
    const logZ = Math.log(z);
    let h = 0;
    for (let k = 0; k < classes; k++) {
      const lp = logits[o + k]! - max - logZ;
      h -= Math.exp(lp) * lp;
    }
    const label = labels[r]!;
    sums.loss -= logits[o + label]! - max - logZ;
    sums.entropy += h;
    if (arg === label) sums.correct++;
    sums.count++;
  }
}

export interface Metrics {
  count: number;
  /** Fraction correct, 0..1. */
  accuracy: number;
  /** Mean cross-entropy, nats. */
  loss: number;
  /** Mean prediction entropy, nats. */
  entropy: number;
}

export function finish(s: MetricSums): Metrics {
  const n = Math.max(1, s.count);
  return { count: s.count, accuracy: s.correct / n, loss: s.loss / n, entropy: s.entropy / n };
}
