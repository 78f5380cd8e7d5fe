/**
 * Shared machinery of the functional models: seeded parameter initialisation (one xoroshiro128+ stream per
 * parameter, keyed by seed and name, so a value depends only on (seed, name) and never on the backend), the
 * `defineModel` builder, and the forward wrapper that runs a model body inside `tf.tidy` and collects captures.
 */
import * as tf from "@tensorflow/tfjs";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { FusionError } from "../../errors.js";
import type { ForwardOptions, ForwardResult, Model, ParamSpec, Params, PermutationSpec } from "./types.js";

/** How a parameter starts. `uniform`: U(-bound, bound); `normal`: N(0, std²), redrawn beyond ±2 std when truncated. */
export type Init =
  | { kind: "uniform"; bound: number }
  | { kind: "normal"; std: number; truncate?: boolean }
  | { kind: "const"; value: number };

export interface ParamDef extends ParamSpec {
  init: Init;
}

export const zerosInit: Init = { kind: "const", value: 0 };
export const onesInit: Init = { kind: "const", value: 1 };

/** PyTorch's default for nn.Linear / nn.Conv2d weights and biases: kaiming_uniform_(a=√5) gives U(±1/√fan_in). */
export function torchDefault(fanIn: number): Init {
  return { kind: "uniform", bound: 1 / Math.sqrt(fanIn) };
}

export function param(name: string, shape: number[], init: Init, trainable = true): ParamDef {
  return { name, shape, init, trainable };
}

/** PyTorch nn.Linear(inF, outF): weight [out, in], bias [out], both U(±1/√in). */
export function linearDefs(prefix: string, inF: number, outF: number, bias = true): ParamDef[] {
  const defs = [param(`${prefix}.weight`, [outF, inF], torchDefault(inF))];
  if (bias) defs.push(param(`${prefix}.bias`, [outF], torchDefault(inF)));
  return defs;
}

/** PyTorch nn.Conv2d: weight [out, in, kh, kw], bias [out], both U(±1/√(in·kh·kw)). */
export function convDefs(prefix: string, inC: number, outC: number, k: number, bias = true): ParamDef[] {
  const fanIn = inC * k * k;
  const defs = [param(`${prefix}.weight`, [outC, inC, k, k], torchDefault(fanIn))];
  if (bias) defs.push(param(`${prefix}.bias`, [outC], torchDefault(fanIn)));
  return defs;
}

/** nn.BatchNorm2d: weight 1, bias 0, running_mean 0, running_var 1 (num_batches_tracked is not kept). */
export function batchNormDefs(prefix: string, c: number): ParamDef[] {
  return [
    param(`${prefix}.weight`, [c], onesInit),
    param(`${prefix}.bias`, [c], zerosInit),
    param(`${prefix}.running_mean`, [c], zerosInit, false),
    param(`${prefix}.running_var`, [c], onesInit, false),
  ];
}

export function layerNormDefs(prefix: string, c: number): ParamDef[] {
  return [param(`${prefix}.weight`, [c], onesInit), param(`${prefix}.bias`, [c], zerosInit)];
}

/** FNV-1a over the UTF-16 code units of a name. */
function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The values of one parameter: a deterministic function of (seed, name, shape, init). */
export function initValues(seed: number, def: ParamDef): Float32Array {
  const n = def.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const init = def.init;
  if (init.kind === "const") return out.fill(init.value);
  const g = xoroshiro128plus((Math.imul(seed | 0, 0x9e3779b1) ^ hashName(def.name)) | 0);
  const unit = () => ((g.next() >>> 0) + 0.5) / 4294967296; // (0, 1)
  if (init.kind === "uniform") {
    for (let i = 0; i < n; i++) out[i] = (2 * unit() - 1) * init.bound;
    return out;
  }
  for (let i = 0; i < n; i++) {
    let z: number;
    do z = Math.sqrt(-2 * Math.log(unit())) * Math.cos(2 * Math.PI * unit());
    while (init.truncate === true && Math.abs(z) > 2);
    out[i] = z * init.std;
  }
  return out;
}

export function initParams(seed: number, defs: readonly ParamDef[]): Params {
  if (!Number.isSafeInteger(seed)) throw new FusionError("INVALID_ARGUMENT", `seed must be an integer, got ${seed}`);
  const params: Params = {};
  for (const d of defs) params[d.name] = tf.tensor(initValues(seed, d), d.shape, "float32");
  return params;
}

/** Collects captures during a forward pass; each capture is its own tensor handle (a clone), so disposing one never frees another or the input. */
export class Captures {
  readonly map: Record<string, tf.Tensor> = {};
  constructor(readonly enabled: boolean) {}
  add(name: string, t: tf.Tensor, shape?: number[]): void {
    if (!this.enabled) return;
    this.map[name] = shape === undefined ? tf.clone(t) : tf.reshape(t, shape);
  }
}

export interface BodyResult {
  output: tf.Tensor;
  buffers?: Params;
}

/**
 * Runs a model body inside tf.tidy: every intermediate is freed, only output / captures / buffers survive (under a
 * gradient tape tfjs keeps what the backward pass needs on its own).
 */
export function runForward(
  options: ForwardOptions | undefined,
  body: (cap: Captures, training: boolean) => BodyResult,
): ForwardResult {
  const training = options?.training === true;
  const cap = new Captures(options?.capture === true);
  return tf.tidy(() => {
    const r = body(cap, training);
    const result: ForwardResult = { output: r.output };
    if (cap.enabled) result.captures = cap.map;
    if (r.buffers !== undefined) result.buffers = r.buffers;
    return result as unknown as tf.TensorContainer;
  }) as unknown as ForwardResult;
}

/** Looks up a parameter, with a typed error naming it when the map lacks it. */
export function get(params: Params, name: string): tf.Tensor {
  const t = params[name];
  if (t === undefined) throw new FusionError("TENSOR_NOT_FOUND", "parameter missing from the map", { tensor: name });
  return t;
}

export function checkInput(x: tf.Tensor, perExample: readonly number[], arch: string): void {
  const ok = x.rank === perExample.length + 1 && perExample.every((d, i) => x.shape[i + 1] === d);
  if (!ok)
    throw new FusionError(
      "SHAPE_MISMATCH",
      `${arch} expects input [N, ${perExample.join(", ")}], got [${x.shape.join(", ")}]`,
    );
}

export function positiveInt(value: unknown, key: string): number {
  if (!Number.isSafeInteger(value) || (value as number) <= 0)
    throw new FusionError("INVALID_ARGUMENT", `expected a positive integer, got ${String(value)}`, { key });
  return value as number;
}

export interface ModelParts<C> {
  arch: string;
  config: C;
  defs: ParamDef[];
  inputShape: number[];
  featureDim: number;
  forward: Model<C>["forward"];
  permutationSpec: PermutationSpec;
}

export function defineModel<C>(parts: ModelParts<C>): Model<C> {
  const { defs } = parts;
  const seen = new Set<string>();
  for (const d of defs) {
    if (seen.has(d.name)) throw new FusionError("DUPLICATE_TENSOR", "parameter defined twice", { tensor: d.name });
    seen.add(d.name);
  }
  return {
    arch: parts.arch,
    config: parts.config,
    params: defs.map(({ name, shape, trainable }) => ({ name, shape: [...shape], trainable })),
    inputShape: parts.inputShape,
    featureDim: parts.featureDim,
    init: (seed: number) => initParams(seed, defs),
    forward: parts.forward,
    permutationSpec: parts.permutationSpec,
  };
}

/** Spec builder: `axis(group, param, axis)` appends one axis to a group, creating it with `size` on first use. */
export class SpecBuilder {
  readonly spec: PermutationSpec = { perms: {} };
  group(name: string, size: number, activation?: string): this {
    if (this.spec.perms[name] === undefined) {
      this.spec.perms[name] = { size, axes: [] };
      if (activation !== undefined) this.spec.perms[name].activation = activation;
    }
    return this;
  }
  axis(group: string, param: string, axis: number): this {
    const g = this.spec.perms[group];
    if (g === undefined) throw new Error(`internal: group ${group} not declared`);
    g.axes.push({ param, axis });
    return this;
  }
  /** Output units of a layer (axis 0 of weight and, for each suffix, of that vector). */
  out(group: string, prefix: string, suffixes: readonly string[] = ["weight", "bias"]): this {
    for (const s of suffixes) this.axis(group, `${prefix}.${s}`, 0);
    return this;
  }
}

export const BN_SUFFIXES = ["weight", "bias", "running_mean", "running_var"] as const;
