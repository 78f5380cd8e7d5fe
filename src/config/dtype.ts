/** mergekit dtype names (`dtype:` / `out_dtype:`) -> safetensors dtype names. */
import { FusionError } from "../errors.js";
import type { DType } from "../tensor/index.js";

/** The dtypes a config may merge in or write. */
export type ConfigDType = Extract<DType, "F32" | "F16" | "BF16">;

/**
 * mergekit accepts float32, float16, bfloat16 (optionally as torch.float16 etc.); the short aliases and PyTorch's
 * float / half spellings are accepted too, and the safetensors names themselves. Case does not matter.
 */
const NAMES: Record<string, ConfigDType> = {
  float32: "F32",
  fp32: "F32",
  f32: "F32",
  float: "F32",
  float16: "F16",
  fp16: "F16",
  f16: "F16",
  half: "F16",
  bfloat16: "BF16",
  bf16: "BF16",
};

/**
 * Normalises a config dtype name to "F32" | "F16" | "BF16".
 * @param path the config key the name came from, quoted in the error (e.g. `dtype`, `out_dtype`)
 * @param file the config file, for the error
 */
export function dtypeFromConfig(name: string, path = "dtype", file?: string): ConfigDType {
  const key = name
    .trim()
    .toLowerCase()
    .replace(/^torch\./, "");
  const dtype = NAMES[key];
  if (dtype !== undefined) return dtype;
  if (key === "int64") {
    throw new FusionError(
      "NOT_SUPPORTED",
      "dtype int64 is not supported for merging; use float32, float16 or bfloat16",
      {
        file,
        key: path,
      },
    );
  }
  throw new FusionError(
    "CONFIG_INVALID",
    `unknown dtype ${JSON.stringify(name)}; expected one of float32, float16, bfloat16 (or fp32, fp16, bf16, float, half)`,
    { file, key: path },
  );
}
