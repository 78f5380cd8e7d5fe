/** Rebuilding a model from `{ arch, config }` (what checkpoint sidecars store). */
import { FusionError } from "../../errors.js";
import { llama } from "./llama.js";
import { mlp } from "./mlp.js";
import { resnet20 } from "./resnet.js";
import type { Model } from "./types.js";
import { vgg } from "./vgg.js";
import { vit } from "./vit.js";

// biome-ignore lint/suspicious/noExplicitAny: each factory takes its own config type
const FACTORIES: Record<string, (config: any) => Model<any>> = { mlp, vgg, resnet20, vit, llama };

export const MODEL_ARCHS: readonly string[] = Object.keys(FACTORIES);

export interface ModelDescriptor {
  arch: string;
  config: Record<string, unknown>;
}

export function modelFromConfig(descriptor: ModelDescriptor): Model<Record<string, unknown>> {
  const make = FACTORIES[descriptor.arch];
  if (make === undefined)
    throw new FusionError(
      "NOT_SUPPORTED",
      `unknown architecture '${descriptor.arch}' (known: ${MODEL_ARCHS.join(", ")})`,
      {
        key: "arch",
      },
    );
  return make(descriptor.config ?? {});
}

/** The `{ arch, config }` that rebuilds a model. */
export function describeModel(model: Model<unknown>): ModelDescriptor {
  return { arch: model.arch, config: JSON.parse(JSON.stringify(model.config)) as Record<string, unknown> };
}
