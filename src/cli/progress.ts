/**
 * One progress bar style for long CLI work: live on a TTY, a plain line every few seconds otherwise (CI logs).
 * cli-progress draws non-TTY lines from a timer, which never fires while synchronous work (a training loop) holds
 * the event loop; so `update` also draws when the interval has passed.
 */
import { SingleBar } from "cli-progress";

const PLAIN_INTERVAL_MS = 5000;

export interface ProgressBar {
  start(total: number, value: number, payload?: object): void;
  update(value: number, payload?: object): void;
  stop(): void;
}

export function progressBar(format: string): ProgressBar {
  const tty = process.stderr.isTTY === true;
  const bar = new SingleBar({
    format,
    stream: process.stderr,
    noTTYOutput: true,
    notTTYSchedule: PLAIN_INTERVAL_MS,
    hideCursor: tty,
  });
  const render = () => (bar as unknown as { render(): void }).render();
  let last = 0;
  return {
    start(total, value, payload) {
      bar.start(total, value, payload);
      last = Date.now();
    },
    update(value, payload) {
      bar.update(value, payload);
      const now = Date.now();
      if (now - last >= (tty ? 100 : PLAIN_INTERVAL_MS)) {
        render();
        last = now;
      }
    },
    stop: () => bar.stop(),
  };
}
