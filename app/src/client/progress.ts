import { SingleBar } from 'cli-progress';
import type { LoadProfile } from '../shared/profile';
import type { Progress } from './timeline';

/** Seconds the profile's stages take (ramps at their rates, plus holds), within the hard limit. */
export function plannedSeconds(profile: LoadProfile): number {
  let level = 0;
  let ms = 0;
  for (const stage of profile.stages) {
    ms += (Math.abs(stage.connections - level) / stage.rampRate) * 1000 + stage.holdMs;
    level = stage.connections;
  }
  // (At the end everyone is closed at once: no ramp-down time.)
  return Math.min(ms, profile.maxDurationMs) / 1000;
}

const line = (p: Progress) =>
  `${p.elapsedSeconds.toFixed(0)}s open ${p.open}/${p.users} sent ${p.sentPerSecond}/s recv ${p.receivedPerSecond}/s rtt p99 ` +
  `${p.rttP99.toFixed(2)} ms errors ${p.errors} unexpected closes ${p.unexpectedCloses}`;

/**
 * Live progress on stderr: a bar with the current numbers on a terminal, and a plain line every
 * few seconds elsewhere (CI logs, containers), so logs stay readable.
 */
export class ProgressDisplay {
  private bar?: SingleBar;
  private lastLineAt = -Infinity;

  constructor(
    private readonly totalSeconds: number,
    private readonly quiet: boolean,
    tty = Boolean(process.stderr.isTTY),
  ) {
    if (!quiet && tty) {
      this.bar = new SingleBar({
        format: '{bar} {percentage}% | {status}',
        stream: process.stderr,
        hideCursor: true,
        barsize: 24,
        clearOnComplete: false,
      });
      this.bar.start(Math.max(1, Math.round(totalSeconds)), 0, { status: 'starting' });
    }
  }

  update(p: Progress): void {
    if (this.quiet) return;
    if (this.bar) {
      this.bar.update(Math.min(Math.round(p.elapsedSeconds), Math.round(this.totalSeconds)), { status: line(p) });
    } else if (p.elapsedSeconds - this.lastLineAt >= 5) {
      this.lastLineAt = p.elapsedSeconds;
      process.stderr.write(`[load] ${line(p)}\n`);
    }
  }

  stop(): void {
    if (this.bar) {
      this.bar.update(Math.round(this.totalSeconds));
      this.bar.stop();
    }
  }
}
