/**
 * `fusionkit zoo build`: the FusionBench model-pool protocol on the fmnist-8 suite. A pretrained base (trained on
 * upright `fmnist` with small random translations), one linear-probe head per task on the frozen base (the analogue
 * of CLIP's zero-shot heads), and one fine-tuned backbone per task trained from the base under that task's frozen
 * head; then every model is evaluated on every task. Each artifact is cached on disk under a key of everything that
 * determines it, so a rerun only builds what changed; everything is seeded, so a rebuild gives the same bytes.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type * as tf from "@tensorflow/tfjs";
import { loadTaskSplit, selectPerClass } from "../data/splits.js";
import { FMNIST8 } from "../data/tasks.js";
import type { TaskDef, TaskSplit } from "../data/types.js";
import { FusionError } from "../errors.js";
import { evaluate } from "../eval/evaluate.js";
import { writeFileAtomic } from "../io/atomic.js";
import { headParams, initHead } from "../nn/models/head.js";
import { modelFromConfig } from "../nn/models/registry.js";
import type { Model, ParamSpec, Params } from "../nn/models/types.js";
import { describeNNBackend, initNN } from "../nn/select.js";
import { artifactKey, type CheckpointSidecar, readCheckpoint, writeCheckpoint } from "../train/checkpoint.js";
import { train } from "../train/loop.js";
import { trainProbe } from "../train/probe.js";
import { ZOO_ARCH_CONFIGS, type ZooProfile, zooProfile } from "./profiles.js";

export const SUITES: Record<string, readonly TaskDef[]> = { "fmnist-8": FMNIST8 };

export interface ZooBuildOptions {
  arch: string;
  suite?: string;
  profile?: string;
  /** Output folder (default: zoo/<suite>/<arch>-<profile>). */
  out?: string;
  seed?: number;
  /** Architecture config overrides (merged over the zoo defaults). */
  config?: Record<string, unknown>;
  onEvent?: (e: ZooEvent) => void;
}

export type ZooStage = "base" | "probe" | "finetune" | "eval";

export interface ZooEvent {
  stage: ZooStage;
  task?: string;
  step: number;
  steps: number;
  loss?: number;
  /** True when the artifact came from the cache. */
  cached?: boolean;
}

/** What building one artifact produced (the sidecar fields beyond the common ones). */
interface Built {
  params: Params;
  steps: number;
  seconds: number;
  sidecar: Pick<CheckpointSidecar, "kind"> & Partial<CheckpointSidecar>;
}

export interface PoolArtifact {
  file: string;
  key: string;
  steps: number;
  seconds: number;
  cached: boolean;
}

export interface PoolReport {
  format: "fusionkit-pool/1";
  suite: string;
  arch: string;
  config: Record<string, unknown>;
  profile: string;
  seed: number;
  backend: string;
  tasks: { name: string; numClasses: number; train: number; test: number }[];
  base: PoolArtifact;
  heads: Record<string, PoolArtifact>;
  finetuned: Record<string, PoolArtifact>;
  /** Test accuracy: `base` (with each task's probe head) and `finetuned/<task>` rows, one column per task. */
  accuracy: Record<string, Record<string, number>>;
  summary: { baseProbeAverage: number; finetunedAverage: number; gap: number };
  seconds: number;
}

function defaultOut(suite: string, arch: string, profile: string): string {
  return join("zoo", suite, `${arch}-${profile}`);
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
}

export async function buildZoo(o: ZooBuildOptions): Promise<PoolReport> {
  const t0 = performance.now();
  const suiteName = o.suite ?? "fmnist-8";
  const tasks = SUITES[suiteName];
  if (tasks === undefined)
    throw new FusionError(
      "INVALID_ARGUMENT",
      `suite: unknown suite '${suiteName}' (expected ${Object.keys(SUITES).join(", ")})`,
      {
        key: "suite",
      },
    );
  const profile: ZooProfile = zooProfile(o.profile ?? "small", o.arch);
  const seed = o.seed ?? 0;
  const config = { ...(ZOO_ARCH_CONFIGS[o.arch] ?? {}), ...(o.config ?? {}) };
  const model: Model = modelFromConfig({ arch: o.arch, config });
  await initNN({ log: null });
  const out = resolve(o.out ?? defaultOut(suiteName, o.arch, profile.name));
  mkdirSync(join(out, "heads"), { recursive: true });
  mkdirSync(join(out, "finetuned"), { recursive: true });
  const emit = o.onEvent ?? (() => {});

  const trainSplits = new Map<string, TaskSplit>();
  const testSplits = new Map<string, TaskSplit>();
  for (const t of tasks) {
    trainSplits.set(t.name, loadTaskSplit(t, "train", { seed, limit: profile.trainLimit }));
    testSplits.set(t.name, loadTaskSplit(t, "test", { limit: profile.testLimit }));
  }
  const common = { arch: model.arch, config: model.config, suite: suiteName, profile: profile.name, seed };

  // 1. The pretrained base.
  const baseTask = tasks[0]!;
  const baseKey = artifactKey({
    ...common,
    role: "base",
    task: baseTask.name,
    budget: profile.base,
    limit: profile.trainLimit,
  });
  const artifact = (
    file: string,
    specs: readonly ParamSpec[],
    key: string,
    stage: ZooStage,
    task: string,
    build: () => Built,
  ): { params: Params; info: PoolArtifact } => {
    const path = join(out, file);
    const cached = readCheckpoint(path, specs, key);
    if (cached !== undefined) {
      emit({ stage, task, step: 1, steps: 1, cached: true });
      const { steps = 0, seconds = 0 } = cached.sidecar;
      return { params: cached.params, info: { file, key, steps, seconds, cached: true } };
    }
    const b = build();
    writeCheckpoint(path, b.params, {
      format: "fusionkit-checkpoint/1",
      key,
      ...common,
      task,
      steps: b.steps,
      seconds: b.seconds,
      ...b.sidecar,
    });
    return { params: b.params, info: { file, key, steps: b.steps, seconds: b.seconds, cached: false } };
  };
  const progress = (stage: ZooStage, task: string) => (p: { step: number; steps: number; loss: number }) =>
    emit({ stage, task, step: p.step, steps: p.steps, loss: p.loss });

  const { params: base, info: baseInfo } = artifact(
    "base.safetensors",
    model.params,
    baseKey,
    "base",
    baseTask.name,
    () => {
      const r = train({
        model,
        backbone: model.init(seed),
        head: initHead(model.featureDim, baseTask.numClasses, seed + 1),
        data: trainSplits.get(baseTask.name)!,
        config: { ...profile.base, seed, trainBackbone: true, trainHead: true },
        onProgress: progress("base", baseTask.name),
      });
      disposeParams(r.head);
      return {
        params: r.backbone,
        steps: r.steps,
        seconds: r.seconds,
        sidecar: { kind: "backbone", train: profile.base },
      };
    },
  );

  // 2. One linear probe per task on the frozen base; 3. one fine-tune per task under its frozen probe head.
  const heads: Record<string, Params> = {};
  const headInfo: Record<string, PoolArtifact> = {};
  const finetuned: Record<string, Params> = {};
  const ftInfo: Record<string, PoolArtifact> = {};
  for (const [i, t] of tasks.entries()) {
    const key = artifactKey({
      ...common,
      role: "head",
      task: t.name,
      base: baseKey,
      budget: profile.probe,
      shots: profile.probeShots,
    });
    const specs = headParams(model.featureDim, t.numClasses);
    const a = artifact(`heads/${t.name}.safetensors`, specs, key, "probe", t.name, () => {
      const full = trainSplits.get(t.name)!;
      const data = profile.probeShots === undefined ? full : selectPerClass(full, profile.probeShots, seed + 100 + i);
      const init = initHead(model.featureDim, t.numClasses, seed + 100 + i);
      const r = trainProbe(model, base, init, data, { ...profile.probe, seed: seed + 100 + i }, (step, steps, loss) =>
        emit({ stage: "probe", task: t.name, step, steps, loss }),
      );
      disposeParams(init);
      const sidecar = {
        kind: "head" as const,
        train: profile.probe,
        numClasses: t.numClasses,
        featureDim: model.featureDim,
      };
      return { params: r.head, steps: r.steps, seconds: r.seconds, sidecar };
    });
    heads[t.name] = a.params;
    headInfo[t.name] = a.info;
  }
  for (const [i, t] of tasks.entries()) {
    const budget = profile.finetune;
    const key = artifactKey({
      ...common,
      role: "finetuned",
      task: t.name,
      head: headInfo[t.name]!.key,
      budget,
      limit: profile.trainLimit,
    });
    const a = artifact(`finetuned/${t.name}.safetensors`, model.params, key, "finetune", t.name, () => {
      const r = train({
        model,
        backbone: base,
        head: heads[t.name]!,
        data: trainSplits.get(t.name)!,
        config: { ...budget, seed: seed + 200 + i, trainBackbone: true, trainHead: false },
        onProgress: progress("finetune", t.name),
      });
      disposeParams(r.head);
      return { params: r.backbone, steps: r.steps, seconds: r.seconds, sidecar: { kind: "backbone", train: budget } };
    });
    finetuned[t.name] = a.params;
    ftInfo[t.name] = a.info;
  }

  // 4. Every model on every task (test split), each task through its own probe head.
  const accuracy: Record<string, Record<string, number>> = {};
  const rows: [string, Params][] = [
    ["base", base],
    ...tasks.map((t) => [`finetuned/${t.name}`, finetuned[t.name]!] as [string, Params]),
  ];
  let done = 0;
  for (const [row, backbone] of rows) {
    accuracy[row] = {};
    for (const t of tasks) {
      accuracy[row]![t.name] = evaluate(model, backbone, heads[t.name]!, testSplits.get(t.name)!).accuracy;
      emit({ stage: "eval", task: t.name, step: ++done, steps: rows.length * tasks.length });
    }
  }
  const baseAvg = mean(tasks.map((t) => accuracy.base![t.name]!));
  const ftAvg = mean(tasks.map((t) => accuracy[`finetuned/${t.name}`]![t.name]!));
  const report: PoolReport = {
    format: "fusionkit-pool/1",
    suite: suiteName,
    arch: model.arch,
    config: model.config,
    profile: profile.name,
    seed,
    backend: describeNNBackend(),
    tasks: tasks.map((t) => ({
      name: t.name,
      numClasses: t.numClasses,
      train: trainSplits.get(t.name)!.count,
      test: testSplits.get(t.name)!.count,
    })),
    base: baseInfo,
    heads: headInfo,
    finetuned: ftInfo,
    accuracy,
    summary: { baseProbeAverage: baseAvg, finetunedAverage: ftAvg, gap: ftAvg - baseAvg },
    seconds: (performance.now() - t0) / 1000,
  };
  writeFileAtomic(join(out, "pool.json"), `${JSON.stringify(report, null, 2)}\n`);
  disposeParams(base);
  for (const p of [...Object.values(heads), ...Object.values(finetuned)]) disposeParams(p);
  return report;
}

function disposeParams(p: Params): void {
  for (const t of Object.values(p)) (t as tf.Tensor).dispose();
}

export function poolExists(dir: string): boolean {
  return existsSync(join(dir, "pool.json"));
}
