/** One progress bar style for long CLI work: live on a TTY, a plain line every few seconds otherwise (CI logs). */
import { SingleBar } from "cli-progress";

export function progressBar(format: string): SingleBar {
  return new SingleBar({
    format,
    stream: process.stderr,
    noTTYOutput: true,
    notTTYSchedule: 5000,
    hideCursor: process.stderr.isTTY === true,
  });
}
