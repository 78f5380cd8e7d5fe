// Plain JavaScript so that bench:merge's child (merge-child.mjs), which runs without tsx, can import it too.
import { readFileSync } from "node:fs";

/**
 * This process's peak resident set in MB. Reads VmHWM from /proc/self/status: getrusage's ru_maxrss is carried
 * over from the parent through fork + exec on Linux, so a child spawned by a large parent would report the
 * parent's peak. Falls back to ru_maxrss elsewhere.
 * @returns {number}
 */
export function peakRssMB() {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (m !== null) return Number(m[1]) / 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS / 1024;
}
