import { FusionError, preview } from "../errors.js";

/**
 * JSON.parse keeps the last of two equal keys; formats that must refuse ambiguity (safetensors headers, shard
 * indexes) call this first. Returns the first key that repeats within one object, with its path, or undefined.
 * Assumes `text` already parsed as JSON (so it is well formed).
 */
export function findDuplicateKey(text: string): string | undefined {
  const stack: Array<{ keys: Set<string> | null; path: string }> = [];
  let expectKey = false;
  let lastKey = "";
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let j = i + 1;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === 0x5c) j += 2;
        else if (d === 0x22) break;
        else j++;
      }
      const top = stack[stack.length - 1];
      if (expectKey && top !== undefined && top.keys !== null) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) return top.path === "" ? key : `${top.path}.${key}`;
        top.keys.add(key);
        lastKey = key;
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b) {
      const parent = stack[stack.length - 1];
      const path = parent === undefined ? "" : parent.path === "" ? lastKey : `${parent.path}.${lastKey}`;
      stack.push({ keys: new Set(), path });
      expectKey = true;
    } else if (c === 0x5b) {
      const parent = stack[stack.length - 1];
      stack.push({ keys: null, path: parent?.path ?? "" });
    } else if (c === 0x7d || c === 0x5d) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c) {
      const top = stack[stack.length - 1];
      expectKey = top !== undefined && top.keys !== null;
    }
  }
  return undefined;
}

/** Parse JSON text, refusing syntax errors and repeated keys with a typed error naming the file. */
export function parseStrictJson(
  text: string,
  file: string,
  code: "SAFETENSORS_HEADER" | "INDEX_INVALID" | "CONFIG_INVALID",
): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new FusionError(code, `invalid JSON: ${preview((e as Error).message, 120)}`, { file });
  }
  const dup = findDuplicateKey(text);
  if (dup !== undefined) throw new FusionError(code, `key '${dup}' appears twice`, { file });
  return value;
}
