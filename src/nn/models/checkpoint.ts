/**
 * Parameter maps as safetensors state dicts: F32, written atomically (temporary file + rename), read back with
 * every name, shape and dtype checked against the model, errors naming the file and the tensor.
 */
import * as tf from "@tensorflow/tfjs";
import { FusionError } from "../../errors.js";
import { SafetensorsFile } from "../../io/safetensors-read.js";
import { saveSafetensors } from "../../io/safetensors-write.js";
import { toFloat32 } from "../../tensor/convert.js";
import { makeTensor, type Tensor } from "../../tensor/tensor.js";
import type { Model, Params } from "./types.js";

export { describeModel, MODEL_ARCHS, type ModelDescriptor, modelFromConfig } from "./registry.js";

/** Writes `params` (in map order) as an F32 safetensors file; `metadata` goes to `__metadata__`. */
export function saveParams(path: string, params: Params, metadata?: Readonly<Record<string, string>>): void {
  const list: [string, Tensor][] = Object.entries(params).map(([name, t]) => {
    if (t.dtype !== "float32")
      throw new FusionError("DTYPE_MISMATCH", `expected float32, got ${t.dtype}`, { file: path, tensor: name });
    return [name, makeTensor("F32", t.shape, t.dataSync() as Float32Array)];
  });
  saveSafetensors(path, list, metadata);
}

const IGNORED = /(^|\.)num_batches_tracked$/;

/**
 * Reads a state dict for `model`: every parameter must be present with its shape (F32, F16, BF16 and F64 are
 * decoded to float32); names the model does not have are an error, except PyTorch's `num_batches_tracked`.
 */
export function loadParams(path: string, model: Pick<Model<unknown>, "params">): Params {
  const f = SafetensorsFile.open(path);
  const out: Params = {};
  try {
    const expected = new Set(model.params.map((p) => p.name));
    for (const name of f.names())
      if (!expected.has(name) && !IGNORED.test(name))
        throw new FusionError("TENSOR_NOT_FOUND", "not a parameter of the model", { file: path, tensor: name });
    for (const p of model.params) {
      if (!f.has(p.name))
        throw new FusionError("TENSOR_NOT_FOUND", `missing (expected shape [${p.shape.join(", ")}])`, {
          file: path,
          tensor: p.name,
        });
      const info = f.info(p.name);
      if (info.shape.length !== p.shape.length || info.shape.some((d, i) => d !== p.shape[i]))
        throw new FusionError(
          "SHAPE_MISMATCH",
          `shape [${info.shape.join(", ")}], model expects [${p.shape.join(", ")}]`,
          {
            file: path,
            tensor: p.name,
          },
        );
      if (!["F32", "F16", "BF16", "F64"].includes(info.dtype))
        throw new FusionError("DTYPE_MISMATCH", `${info.dtype} is not a float dtype`, { file: path, tensor: p.name });
      out[p.name] = tf.tensor(toFloat32(f.read(p.name)), p.shape, "float32");
    }
    return out;
  } catch (e) {
    tf.dispose(Object.values(out));
    throw e;
  } finally {
    f.close();
  }
}
