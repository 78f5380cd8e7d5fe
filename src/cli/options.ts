/** Option parsers shared by the CLI commands: numbers with ranges, JSON objects. */
import { InvalidArgumentError } from "commander";

export function parseInteger(name: string, min: number) {
  return (text: string): number => {
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return n;
  };
}

export function parsePositive(name: string) {
  return (text: string): number => {
    const n = Number(text);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number`);
    return n;
  };
}

export function parseNonNegative(name: string) {
  return (text: string): number => {
    const n = Number(text);
    if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${name} must be a number >= 0`);
    return n;
  };
}

export function parseJsonObject(name: string) {
  return (text: string): Record<string, unknown> => {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new InvalidArgumentError(`${name} must be a JSON object: ${(e as Error).message}`);
    }
    if (v === null || typeof v !== "object" || Array.isArray(v))
      throw new InvalidArgumentError(`${name} must be a JSON object, e.g. '{"hidden":[256,256]}'`);
    return v as Record<string, unknown>;
  };
}
