import { FusionError } from "../errors.js";
import gemma from "./data/gemma.json" with { type: "json" };
import gemma2 from "./data/gemma2.json" with { type: "json" };
import gpt2 from "./data/gpt2.json" with { type: "json" };
import llama from "./data/llama.json" with { type: "json" };
import mistral from "./data/mistral.json" with { type: "json" };
import phi3 from "./data/phi3.json" with { type: "json" };
import qwen2 from "./data/qwen2.json" with { type: "json" };

/** One weight of an architecture; layer weights hold `{layer}` where the layer index goes. */
export interface WeightTemplate {
  readonly name: string;
  /** Token embedding or LM head: a vocabulary-size mismatch is cropped, not an error. */
  readonly embed?: boolean;
  /** May be absent from a checkpoint (e.g. a head tied to the embeddings). */
  readonly optional?: boolean;
  /** Names this weight is tied to: when it is absent, it is not written. */
  readonly tiedTo?: readonly string[];
  /** Other names the same weight goes by in some checkpoints. */
  readonly aliases?: readonly string[];
}

/** An architecture as data: the weights before, in, and after the repeated layers. */
export interface ArchTemplate {
  readonly name: string;
  readonly architectures: readonly string[];
  readonly modelType: string;
  /** config.json key holding the layer count. */
  readonly numLayersKey: string;
  readonly pre: readonly WeightTemplate[];
  readonly layer: readonly WeightTemplate[];
  readonly post: readonly WeightTemplate[];
  /** Built from tensor names rather than a template file. */
  readonly auto?: boolean;
}

export const TEMPLATES: readonly ArchTemplate[] = [llama, mistral, qwen2, gemma, gemma2, phi3, gpt2];

export const LAYER = "{layer}";

export function layerName(template: string, layer: number): string {
  return template.split(LAYER).join(String(layer));
}

/** The template matching config.json's `architectures[0]` (or `model_type`), if any. */
export function templateForConfig(config: Record<string, unknown> | undefined): ArchTemplate | undefined {
  if (config === undefined) return undefined;
  const archs = Array.isArray(config.architectures) ? (config.architectures as unknown[]) : [];
  const first = archs.find((a): a is string => typeof a === "string");
  if (first !== undefined) {
    const t = TEMPLATES.find((x) => x.architectures.includes(first));
    if (t !== undefined) return t;
  }
  if (typeof config.model_type === "string") return TEMPLATES.find((x) => x.modelType === config.model_type);
  return undefined;
}

const LAYER_INDEX = /\.(\d+)\./;
const EMBED = /(^|\.)(embed_tokens|wte|word_embeddings|embed_in|embed_out|lm_head)(\.|$)/;
const PRE = /(^|\.)(embed_tokens|wte|wpe|word_embeddings|embed_in|embeddings)(\.|$)/;

/**
 * Infer a template from one model's tensor names: names with a `.N.` segment are layer weights (their first such
 * segment is the layer index); the others are pre weights when they look like input embeddings, else post.
 */
export function autoTemplate(names: readonly string[], source: string): ArchTemplate {
  const layer: WeightTemplate[] = [];
  const seenLayer = new Set<string>();
  const pre: WeightTemplate[] = [];
  const post: WeightTemplate[] = [];
  const stacks = new Set<string>();
  for (const n of names) {
    const m = LAYER_INDEX.exec(n);
    if (m !== null) {
      const prefix = n.slice(0, m.index);
      stacks.add(prefix);
      const t = `${prefix}.${LAYER}.${n.slice(m.index + m[0].length)}`;
      if (!seenLayer.has(t)) {
        seenLayer.add(t);
        layer.push({ name: t, embed: EMBED.test(n) || undefined, optional: true });
      }
    } else {
      const w: WeightTemplate = { name: n, embed: EMBED.test(n) || undefined };
      (PRE.test(n) ? pre : post).push(w);
    }
  }
  if (stacks.size > 1) {
    throw new FusionError(
      "NOT_SUPPORTED",
      `cannot infer the architecture: several numbered layer stacks (${[...stacks].join(", ")}); add a template`,
      { file: source },
    );
  }
  return {
    name: "auto",
    architectures: [],
    modelType: "auto",
    numLayersKey: "num_hidden_layers",
    pre,
    layer,
    post,
    auto: true,
  };
}

/** Number of layers: config.json's count when present, else one more than the largest layer index in the names. */
export function countLayers(
  template: ArchTemplate,
  config: Record<string, unknown> | undefined,
  names: readonly string[],
): number {
  const fromConfig = config?.[template.numLayersKey];
  if (Number.isSafeInteger(fromConfig) && (fromConfig as number) >= 0) return fromConfig as number;
  let max = -1;
  for (const n of names) {
    const m = LAYER_INDEX.exec(n);
    if (m !== null) max = Math.max(max, Number(m[1]));
  }
  return max + 1;
}
