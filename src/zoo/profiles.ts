/**
 * Build budgets for the model pools. `small` is a smoke profile (data subsets, a few dozen steps: seconds); `full` is
 * the real pool. The base's budget is deliberately limited: the base+probe average over the suite must sit clearly
 * below the fine-tuned average (FusionBench: CLIP ViT-B/32 48.2 zero-shot vs 90.3 fine-tuned), or merging has nothing
 * to recover.
 */
import { FusionError } from "../errors.js";
import type { TrainConfig } from "../train/loop.js";
import type { ProbeConfig } from "../train/probe.js";

export type ProfileName = "small" | "full";
export const PROFILES: readonly ProfileName[] = ["small", "full"];

export interface ZooProfile {
  name: ProfileName;
  /** Train examples per task (after the val split), all when absent. */
  trainLimit?: number;
  /** Test examples per task, all when absent. */
  testLimit?: number;
  base: Omit<TrainConfig, "seed" | "trainBackbone" | "trainHead">;
  probe: Omit<ProbeConfig, "seed">;
  /**
   * Labelled examples per class the probes see (all when absent). Few-shot probes keep the heads the weak link they
   * are on FusionBench, where CLIP's heads see no task data at all; fine-tuning under the frozen head recovers.
   */
  probeShots?: number;
  finetune: Omit<TrainConfig, "seed" | "trainBackbone" | "trainHead">;
}

/** Default model configuration per architecture for the pools. */
export const ZOO_ARCH_CONFIGS: Record<string, Record<string, unknown>> = {
  mlp: { hidden: [512, 64] },
  vit: { patchSize: 7, dim: 64, depth: 4, heads: 4, mlpRatio: 2 },
  vgg: {},
  resnet20: {},
};

const adamw = { name: "adamw" as const, weightDecay: 0.01 };

function smallProfile(): ZooProfile {
  return {
    name: "small",
    trainLimit: 1024,
    testLimit: 500,
    base: { steps: 40, batchSize: 64, optimizer: adamw, lr: 2e-3, schedule: "cosine", warmupSteps: 4, augmentShift: 2 },
    probe: { steps: 40, batchSize: 128, optimizer: { name: "adam" }, lr: 1e-2, schedule: "cosine", warmupSteps: 0 },
    probeShots: 10,
    finetune: { steps: 20, batchSize: 64, optimizer: adamw, lr: 1e-3, schedule: "cosine", warmupSteps: 2 },
  };
}

function fullProfile(arch: string): ZooProfile {
  const vit = arch === "vit";
  return {
    name: "full",
    base: {
      steps: vit ? 4000 : 300,
      batchSize: 128,
      optimizer: adamw,
      lr: vit ? 2e-3 : 1e-3,
      schedule: "cosine",
      warmupSteps: vit ? 100 : 20,
      augmentShift: 2,
    },
    probe: { steps: 300, batchSize: 256, optimizer: { name: "adam" }, lr: 5e-3, schedule: "cosine", warmupSteps: 0 },
    probeShots: 10,
    finetune: {
      steps: vit ? 1200 : 1300,
      batchSize: 128,
      optimizer: adamw,
      lr: vit ? 1e-3 : 5e-4,
      schedule: "cosine",
      warmupSteps: 50,
    },
  };
}

export function zooProfile(name: string, arch: string): ZooProfile {
  if (name === "small") return smallProfile();
  if (name === "full") return fullProfile(arch);
  throw new FusionError("INVALID_ARGUMENT", `profile: unknown profile '${name}' (expected ${PROFILES.join(", ")})`, {
    key: "profile",
  });
}
