/**
 * Learning-rate schedules: linear warmup from 0, then constant or cosine decay to `minLr` (Loshchilov & Hutter,
 * SGDR, ICLR 2017 — the single-cycle form without restarts that PyTorch's CosineAnnealingLR computes).
 */

export type ScheduleKind = "constant" | "cosine";

export interface ScheduleOptions {
  kind: ScheduleKind;
  /** Peak learning rate (after warmup). */
  lr: number;
  totalSteps: number;
  warmupSteps?: number;
  /** Where cosine decay ends (default 0). */
  minLr?: number;
}

/** Learning rate for the 0-based `step`. */
export function learningRateAt(o: ScheduleOptions, step: number): number {
  const warmup = o.warmupSteps ?? 0;
  if (step < warmup) return (o.lr * (step + 1)) / warmup;
  if (o.kind === "constant") return o.lr;
  const min = o.minLr ?? 0;
  const span = Math.max(1, o.totalSteps - warmup);
  const t = Math.min(1, (step - warmup) / span);
  return min + 0.5 * (o.lr - min) * (1 + Math.cos(Math.PI * t));
}
