import type { GeneratorHealth } from './report-model';
import type { Snapshot } from './runner';

/** Lag or CPU above these in enough intervals means the generator, not the system, limited the run. */
export const LAG_LIMIT_MS = 50;
export const CPU_LIMIT_PERCENT = 90;
/** The share of a run's intervals (every process's, each second) that may be busy; and at least 2 must be. */
export const BUSY_SHARE_LIMIT = 0.1;
/** A busy interval below this CPU lagged because other processes had the cores, not from its own work. */
export const STARVED_CPU_PERCENT = 50;

/** Whether one process's second was busy: its event loop lagged, or it used nearly all of a core. */
export function isBusySecond(loopLagP99Ms: number, cpuPercent: number): boolean {
  return loopLagP99Ms > LAG_LIMIT_MS || cpuPercent > CPU_LIMIT_PERCENT;
}

/**
 * Judges whether the load generator itself was the bottleneck, from the event-loop lag and CPU
 * each runner reports every second: its latencies then overstate the system's.
 *
 * Each process's first second is its warm-up (the first TLS handshakes and messages run through
 * code V8 has not compiled yet) and is left out of the count: in a short run it would otherwise
 * be a large share by itself, so a 5-second job with a slow first second and one lagging
 * second was called untrustworthy for what its start-up cost. Its lag and CPU still show in the
 * maxima and the timeline.
 */
export class GeneratorHealthJudge {
  private lagP99 = 0;
  private lagMax = 0;
  private cpuMax = 0;
  private bad = 0;
  private starved = 0;
  private intervals = 0;
  private warmup = 0;

  observe(s: Snapshot): void {
    this.lagP99 = Math.max(this.lagP99, s.loopLagP99Ms);
    this.lagMax = Math.max(this.lagMax, s.loopLagMaxMs);
    this.cpuMax = Math.max(this.cpuMax, s.cpuPercent);
    if (s.seq === 1) return void this.warmup++;
    this.intervals++;
    if (!isBusySecond(s.loopLagP99Ms, s.cpuPercent)) return;
    this.bad++;
    if (s.cpuPercent < STARVED_CPU_PERCENT) this.starved++;
  }

  verdict(workers: number): GeneratorHealth {
    const reasons: string[] = [];
    const badShare = this.intervals ? this.bad / this.intervals : 0;
    if (this.bad >= 2 && badShare >= BUSY_SHARE_LIMIT) {
      const advice =
        this.starved * 2 > this.bad
          ? `in ${this.starved} of them it used under ${STARVED_CPU_PERCENT}% CPU: other processes had the cores, so give the generator cores of its own`
          : 'use more workers or fewer connections';
      reasons.push(
        `event-loop lag above ${LAG_LIMIT_MS} ms or CPU above ${CPU_LIMIT_PERCENT}% in ${this.bad} of ${this.intervals} intervals after the warm-up: ${advice}`,
      );
    }
    return {
      trustworthy: reasons.length === 0,
      reasons,
      eventLoopLagP99Ms: Math.round(this.lagP99 * 10) / 10,
      eventLoopLagMaxMs: Math.round(this.lagMax * 10) / 10,
      cpuPercentMax: this.cpuMax,
      intervals: this.intervals,
      busyIntervals: this.bad,
      warmupIntervals: this.warmup,
      workers,
    };
  }
}
