/**
 * Applying and checking permutation specs (Git Re-Basin, Ainsworth et al. 2023: `apply_permutation` over a
 * `PermutationSpec`). A permutation `perm` of a group maps new unit i to old unit perm[i] on every listed axis.
 */
import * as tf from "@tensorflow/tfjs";
import { FusionError } from "../../errors.js";
import type { Model, Params, PermutationSpec } from "./types.js";

function checkPerm(name: string, perm: Int32Array, size: number): void {
  if (!(perm instanceof Int32Array) || perm.length !== size)
    throw new FusionError("INVALID_ARGUMENT", `permutation must be an Int32Array of length ${size}`, { key: name });
  const seen = new Uint8Array(size);
  for (const p of perm) {
    if (p < 0 || p >= size || seen[p] === 1)
      throw new FusionError("INVALID_ARGUMENT", `not a permutation of 0..${size - 1} (value ${p})`, { key: name });
    seen[p] = 1;
  }
}

/**
 * New parameters with every group's permutation applied on its axes (groups absent from `perms` stay as they are).
 * Pure: the inputs are untouched, and every returned tensor is new (untouched ones are clones), so the caller
 * disposes the result independently.
 */
export function applyPermutation(params: Params, spec: PermutationSpec, perms: Record<string, Int32Array>): Params {
  for (const name of Object.keys(perms))
    if (spec.perms[name] === undefined)
      throw new FusionError("INVALID_ARGUMENT", "no such permutation group in the spec", { key: name });
  const byParam = new Map<string, { axis: number; perm: Int32Array }[]>();
  for (const [name, group] of Object.entries(spec.perms)) {
    const perm = perms[name];
    if (perm === undefined) continue;
    checkPerm(name, perm, group.size);
    for (const { param, axis } of group.axes) {
      if (params[param] === undefined)
        throw new FusionError("TENSOR_NOT_FOUND", `group '${name}' permutes a parameter the map lacks`, {
          tensor: param,
        });
      const list = byParam.get(param) ?? [];
      list.push({ axis, perm });
      byParam.set(param, list);
    }
  }
  return tf.tidy(() => {
    const out: Params = {};
    for (const [name, t] of Object.entries(params)) {
      let r: tf.Tensor = t;
      for (const { axis, perm } of byParam.get(name) ?? []) {
        if (r.shape[axis] !== perm.length)
          throw new FusionError(
            "SHAPE_MISMATCH",
            `axis ${axis} has size ${r.shape[axis]}, permutation has ${perm.length}`,
            { tensor: name },
          );
        r = tf.gather(r, tf.tensor1d(perm, "int32"), axis);
      }
      out[name] = r === t ? tf.clone(t) : r;
    }
    return out;
  });
}

/** The identity permutation of each group, for building on. */
export function identityPermutations(spec: PermutationSpec): Record<string, Int32Array> {
  const out: Record<string, Int32Array> = {};
  for (const [name, g] of Object.entries(spec.perms)) out[name] = Int32Array.from({ length: g.size }, (_, i) => i);
  return out;
}

/**
 * Checks a model's spec against its parameters: every axis names an existing parameter and an axis whose size is
 * the group's, no (parameter, axis) belongs to two groups, and `features` names a group. Throws the first problem.
 */
export function validatePermutationSpec(model: Pick<Model<unknown>, "params" | "permutationSpec">): void {
  const shapes = new Map(model.params.map((p) => [p.name, p.shape]));
  const owner = new Map<string, string>();
  const spec = model.permutationSpec;
  for (const [name, g] of Object.entries(spec.perms)) {
    if (!Number.isSafeInteger(g.size) || g.size <= 0)
      throw new FusionError("INVALID_ARGUMENT", `group size ${g.size} is not a positive integer`, { key: name });
    if (g.axes.length === 0) throw new FusionError("INVALID_ARGUMENT", "group permutes no axis", { key: name });
    for (const { param, axis } of g.axes) {
      const shape = shapes.get(param);
      if (shape === undefined)
        throw new FusionError("TENSOR_NOT_FOUND", `group '${name}' names a parameter the model lacks`, {
          tensor: param,
          key: name,
        });
      if (!Number.isSafeInteger(axis) || axis < 0 || axis >= shape.length || shape[axis] !== g.size)
        throw new FusionError(
          "SHAPE_MISMATCH",
          `axis ${axis} of [${shape.join(", ")}] does not have the group's size ${g.size}`,
          { tensor: param, key: name },
        );
      const k = `${param}#${axis}`;
      const prev = owner.get(k);
      if (prev !== undefined)
        throw new FusionError("INVALID_ARGUMENT", `axis ${axis} is permuted by both '${prev}' and '${name}'`, {
          tensor: param,
          key: name,
        });
      owner.set(k, name);
    }
  }
  if (spec.features !== undefined && spec.perms[spec.features] === undefined)
    throw new FusionError("INVALID_ARGUMENT", "features names no group", { key: spec.features });
}
