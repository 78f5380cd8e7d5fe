// Sign consensus (TIES "elect sign", mergekit get_mask in generalized_task_arithmetic.py).
//
// For every element, the elected sign is + when the vote is >= 0 (an exact tie elects +), else -. The vote is
// the float32 sum of the weighted deltas ("sum", TIES) or the count of their signs ("count"). A delta takes part
// iff its sign equals the elected sign; a zero delta (sign 0) never does. Because the deltas are *weighted*, a
// negative model weight flips that model's vote.

export type ConsensusMethod = "sum" | "count";

/** The elected sign of one element from its vote (float32 sum of weighted deltas, or sum of signs). */
export function electedSign(vote: number): 1 | -1 {
  return vote >= 0 ? 1 : -1;
}

/**
 * 0/1 masks (one per input, same layout) marking the deltas that agree with the elected sign. The float32 vote
 * is accumulated in input order, as torch does for a sum over a stacked dimension.
 */
export function signConsensusMasks(
  weighted: readonly Float32Array[],
  method: ConsensusMethod = "sum",
  out: Uint8Array[] = weighted.map((w) => new Uint8Array(w.length)),
): Uint8Array[] {
  const k = weighted.length;
  if (k === 0) return out;
  const n = weighted[0]!.length;
  for (const w of weighted) if (w.length !== n) throw new RangeError("signConsensusMasks: inputs differ in length");
  for (let i = 0; i < n; i++) {
    let vote = 0;
    if (method === "sum") for (let m = 0; m < k; m++) vote = Math.fround(vote + weighted[m]![i]!);
    else for (let m = 0; m < k; m++) vote += Math.sign(weighted[m]![i]!);
    const positive = vote >= 0;
    for (let m = 0; m < k; m++) {
      const v = weighted[m]![i]!;
      out[m]![i] = (positive ? v > 0 : v < 0) ? 1 : 0;
    }
  }
  return out;
}
