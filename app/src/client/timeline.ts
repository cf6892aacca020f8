import type { TimelinePoint } from './report-model';
import type { Snapshot } from './runner';
import { newHistogram, type Histogram } from './stats';

/** What the live progress display and the /metrics endpoint see once a second. */
export interface Progress {
  elapsedSeconds: number;
  open: number;
  users: number;
  sentPerSecond: number;
  receivedPerSecond: number;
  rttP99: number;
  rttP50: number;
  errors: number;
  unexpectedCloses: number;
  sentTotal: number;
  receivedTotal: number;
  reconnects: number;
  /** This second's push latencies (µs), merged over the workers: add them up for a window's percentiles. */
  intervalPush: Histogram;
}

/**
 * The run over time, one point a second: merges the snapshots the runners send (one process or
 * several) into timeline points, once every worker has reported that second (or finished), and
 * reports progress with each point.
 */
export class Timeline {
  readonly points: TimelinePoint[] = [];
  /** The most connections open at once, summed over the workers' same-second snapshots. */
  peak = 0;
  private readonly latest: Snapshot[] = [];
  private interval = { rtt: newHistogram(), push: newHistogram() };
  private prev = { sent: 0, received: 0, errors: 0, closes: 0, users: 0, opened: 0 };
  private nextSeq = 1;

  constructor(
    private readonly workers: number,
    private readonly started: number,
    private readonly onProgress?: (p: Progress) => void,
  ) {}

  add(worker: number, s: Snapshot): void {
    this.latest[worker] = s;
    this.interval.rtt.add(s.interval.rtt);
    this.interval.push.add(s.interval.push);
    const reported = () => this.latest.filter(Boolean);
    while (
      reported().length === this.workers &&
      reported().every((x) => x.seq >= this.nextSeq || x.done) &&
      reported().some((x) => x.seq >= this.nextSeq)
    ) {
      this.sample(
        Math.max(
          ...reported()
            .filter((x) => x.seq >= this.nextSeq)
            .map((x) => x.intervalMs),
        ),
      );
      this.nextSeq++;
    }
  }

  /** One point from the newest snapshot of every worker, over the interval they cover. */
  private sample(intervalMs: number): void {
    const parts = this.latest.filter(Boolean);
    if (!parts.length) return;
    const sum = (f: (s: Snapshot) => number) => parts.reduce((a, s) => a + f(s), 0);
    const open = sum((s) => s.stats.open);
    const sent = sum((s) => s.stats.counters.sent);
    const received = sum((s) => s.stats.counters.received);
    const errors = sum((s) => Object.values(s.stats.errors).reduce((a, b) => a + b, 0));
    const closes = sum((s) => Object.values(s.stats.closes).reduce((a, [e, u, f]) => a + e + u + f, 0));
    const unexpected = sum((s) => Object.values(s.stats.closes).reduce((a, [, u]) => a + u, 0));
    const users = sum((s) => s.users);
    const opened = sum((s) => s.stats.counters.opened);
    this.peak = Math.max(this.peak, open);
    const t = Math.round((performance.now() - this.started) / 100) / 10;
    const seconds = intervalMs / 1000;
    const { interval, prev } = this;
    const point: TimelinePoint = {
      t,
      asked: users,
      askedOpensPerSecond: Math.max(0, Math.round((users - prev.users) / seconds)),
      opensPerSecond: Math.round((opened - prev.opened) / seconds),
      open,
      openPerReplica: parts.reduce<Record<string, number>>((acc, s) => {
        for (const [replica, n] of Object.entries(s.stats.openPerReplica ?? {})) acc[replica] = (acc[replica] ?? 0) + n;
        return acc;
      }, {}),
      sentPerSecond: Math.round((sent - prev.sent) / seconds),
      receivedPerSecond: Math.round((received - prev.received) / seconds),
      rttP50: interval.rtt.totalCount ? interval.rtt.getValueAtPercentile(50) / 1000 : 0,
      rttP99: interval.rtt.totalCount ? interval.rtt.getValueAtPercentile(99) / 1000 : 0,
      pushP50: interval.push.totalCount ? interval.push.getValueAtPercentile(50) / 1000 : 0,
      pushP99: interval.push.totalCount ? interval.push.getValueAtPercentile(99) / 1000 : 0,
      errors: errors - prev.errors,
      closes: closes - prev.closes,
      generatorLagP99Ms: Math.round(Math.max(...parts.map((s) => s.loopLagP99Ms)) * 10) / 10,
      generatorCpuPercent: Math.max(...parts.map((s) => s.cpuPercent)),
    };
    this.points.push(point);
    this.prev = { sent, received, errors, closes, users, opened };
    this.interval = { rtt: newHistogram(), push: newHistogram() };
    this.onProgress?.({
      elapsedSeconds: t,
      open,
      users: sum((s) => s.users),
      sentPerSecond: point.sentPerSecond,
      receivedPerSecond: point.receivedPerSecond,
      rttP99: point.rttP99,
      rttP50: point.rttP50,
      errors,
      unexpectedCloses: unexpected,
      sentTotal: sent,
      receivedTotal: received,
      reconnects: sum((s) => s.stats.counters.reconnects),
      intervalPush: interval.push,
    });
  }
}
