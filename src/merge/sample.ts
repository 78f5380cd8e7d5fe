// Where a streaming merge's sample of a tensor comes from (StreamingMerge.sampleSize): short runs of consecutive
// elements spread evenly over the tensor, concatenated in index order. Shared by the engine, which reads them, and
// by tests that drive streams directly.

/** Elements per sampled run (one positional read per input each). */
export const SAMPLE_RUN = 128;

/** Start offsets of the runs of a sample of about `wanted` elements of an n-element tensor (each SAMPLE_RUN long). */
export function sampleStarts(n: number, wanted: number): number[] {
  if (n < SAMPLE_RUN || wanted < SAMPLE_RUN) return [];
  const runs = Math.min(Math.floor(wanted / SAMPLE_RUN), Math.floor(n / SAMPLE_RUN));
  if (runs === 1) return [0];
  return Array.from({ length: runs }, (_, i) => Math.floor((i * (n - SAMPLE_RUN)) / (runs - 1)));
}
