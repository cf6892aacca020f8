import { fork, type ChildProcess } from 'node:child_process';
import { extname, join } from 'node:path';
import * as hdr from 'hdr-histogram-js';
import { peakConnections, type LoadProfile } from '../shared/profile';
import type { FaultEvent, FaultMark } from './faults';
import type { GeneratorHealth, TimelinePoint } from './report';
import { Runner, type RunnerOptions, type Snapshot } from './runner';
import { newHistogram, Stats } from './stats';

/** What a run needs beyond what each process's runner needs. */
export interface LoadRunOptions extends Omit<RunnerOptions, 'workerIndex' | 'workerCount'> {
  /** Worker processes (1: everything in this process). */
  workers: number;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
  /**
   * Called once with `inject`: whoever injects faults into the system under load calls it
   * before acting; it resolves once every process of the run has been told.
   */
  faultChannel?: (inject: (event: FaultEvent) => Promise<void>) => void;
}

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
}

export interface LoadRunResult {
  stats: Stats;
  peak: number;
  timeline: TimelinePoint[];
  generator: GeneratorHealth;
  durationSeconds: number;
  interrupted: boolean;
  /** The injected faults, when they came. */
  faults: FaultMark[];
}

/** Lag or CPU above these in enough intervals means the generator, not the system, limited the run. */
const LAG_LIMIT_MS = 50;
const CPU_LIMIT_PERCENT = 90;

/** Descriptors one worker may use for sockets (the per-process hard limit here is 20,000). */
export const CONNECTIONS_PER_WORKER = 15_000;

export function workersFor(profile: LoadProfile): number {
  if (profile.workers > 0) return profile.workers;
  return Math.max(1, Math.ceil(peakConnections(profile) / CONNECTIONS_PER_WORKER));
}

/**
 * Runs the load in this process or in several worker processes, and merges their measurements
 * exactly: counters add, HDR histograms are added bucket by bucket (never averaged).
 */
export async function runLoad(options: LoadRunOptions): Promise<LoadRunResult> {
  const started = performance.now();
  const latest: Snapshot[] = [];
  const timeline: TimelinePoint[] = [];
  let interval = newHistogram();
  let prev = { sent: 0, received: 0, errors: 0, closes: 0 };
  let nextSeq = 1;
  let peak = 0;
  const health = { lagP99: 0, lagMax: 0, cpuMax: 0, bad: 0, intervals: 0 };
  const faults: FaultMark[] = [];
  const faultSinks: FaultSinks = [];
  options.faultChannel?.(async (event) => {
    faults.push({ ...event, atSeconds: Math.round((performance.now() - started) / 100) / 10 });
    await Promise.all(faultSinks.map((sink) => sink(event)));
  });

  const onSnapshot = (worker: number, s: Snapshot) => {
    latest[worker] = s;
    interval.add(hdr.decodeFromCompressedBase64(s.intervalRtt, 32, false));
    health.intervals++;
    health.lagP99 = Math.max(health.lagP99, s.loopLagP99Ms);
    health.lagMax = Math.max(health.lagMax, s.loopLagMaxMs);
    health.cpuMax = Math.max(health.cpuMax, s.cpuPercent);
    if (s.loopLagP99Ms > LAG_LIMIT_MS || s.cpuPercent > CPU_LIMIT_PERCENT) health.bad++;
    // One timeline point once every worker has reported this second (or finished).
    const workers = Math.max(1, options.workers);
    const reported = () => latest.filter(Boolean);
    while (
      reported().length === workers &&
      reported().every((x) => x.seq >= nextSeq || x.done) &&
      reported().some((x) => x.seq >= nextSeq)
    ) {
      sample(Math.max(...reported().filter((x) => x.seq >= nextSeq).map((x) => x.intervalMs)));
      nextSeq++;
    }
  };

  // One timeline point from the newest snapshot of every worker, over the interval they cover.
  const sample = (intervalMs: number) => {
    const parts = latest.filter(Boolean);
    if (!parts.length) return;
    const sum = (f: (s: Snapshot) => number) => parts.reduce((a, s) => a + f(s), 0);
    const open = sum((s) => s.stats.open);
    const sent = sum((s) => s.stats.counters.sent);
    const received = sum((s) => s.stats.counters.received);
    const errors = sum((s) => Object.values(s.stats.errors).reduce((a, b) => a + b, 0));
    const closes = sum((s) => Object.values(s.stats.closes).reduce((a, [e, u, f]) => a + e + u + f, 0));
    const unexpected = sum((s) => Object.values(s.stats.closes).reduce((a, [, u]) => a + u, 0));
    peak = Math.max(peak, open);
    const t = Math.round((performance.now() - started) / 100) / 10;
    const seconds = intervalMs / 1000;
    const point: TimelinePoint = {
      t,
      open,
      sentPerSecond: Math.round((sent - prev.sent) / seconds),
      receivedPerSecond: Math.round((received - prev.received) / seconds),
      rttP50: interval.totalCount ? interval.getValueAtPercentile(50) / 1000 : 0,
      rttP99: interval.totalCount ? interval.getValueAtPercentile(99) / 1000 : 0,
      errors: errors - prev.errors,
      closes: closes - prev.closes,
    };
    timeline.push(point);
    prev = { sent, received, errors, closes };
    interval = newHistogram();
    options.onProgress?.({
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
    });
  };
  const finals = options.workers <= 1 ? [await runInProcess(options, onSnapshot, faultSinks)] : await runInWorkers(options, onSnapshot, faultSinks);

  const stats = Stats.merge(finals.map((f) => f.stats));
  const reasons: string[] = [];
  const badShare = health.intervals ? health.bad / health.intervals : 0;
  if (health.bad >= 2 && badShare >= 0.1) {
    reasons.push(`event-loop lag above ${LAG_LIMIT_MS} ms or CPU above ${CPU_LIMIT_PERCENT}% in ${health.bad} of ${health.intervals} intervals: use more workers or fewer connections`);
  }
  return {
    stats,
    peak: options.workers <= 1 ? stats.peak : Math.max(peak, stats.open),
    timeline,
    generator: {
      trustworthy: reasons.length === 0,
      reasons,
      eventLoopLagP99Ms: Math.round(health.lagP99 * 10) / 10,
      eventLoopLagMaxMs: Math.round(health.lagMax * 10) / 10,
      cpuPercentMax: health.cpuMax,
      workers: Math.max(1, options.workers),
    },
    durationSeconds: (performance.now() - started) / 1000,
    interrupted: options.signal?.aborted ?? false,
    faults,
  };
}

/** Each resolves once its process knows of the fault. */
type FaultSinks = ((event: FaultEvent) => Promise<void>)[];

function runInProcess(options: LoadRunOptions, onSnapshot: (w: number, s: Snapshot) => void, faultSinks: FaultSinks): Promise<Snapshot> {
  const runner = new Runner({ url: options.url, profile: options.profile, ca: options.ca, insecure: options.insecure, workerIndex: 0, workerCount: 1 });
  faultSinks.push(async (event) => runner.addFault(event));
  return runner.run((s) => onSnapshot(0, s), options.signal);
}

/** Messages between the coordinator and a worker process. */
export type WorkerRequest = { type: 'start'; options: Omit<RunnerOptions, 'ca'> & { ca?: string } } | { type: 'stop' } | { type: 'fault'; event: FaultEvent };
export type WorkerReply = { type: 'tick'; snapshot: Snapshot } | { type: 'final'; snapshot: Snapshot } | { type: 'error'; message: string } | { type: 'fault-ack'; id: string };

function runInWorkers(options: LoadRunOptions, onSnapshot: (w: number, s: Snapshot) => void, faultSinks: FaultSinks): Promise<Snapshot[]> {
  const entry = join(__dirname, `worker${extname(__filename)}`);
  const children: ChildProcess[] = [];
  const acks = new Map<string, () => void>();
  const finals = Array.from({ length: options.workers }, (_, w) =>
    new Promise<Snapshot>((resolve, reject) => {
      const child = fork(entry, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      children.push(child);
      let final: Snapshot | undefined;
      child.on('message', (m: WorkerReply) => {
        if (m.type === 'fault-ack') acks.get(`${w}/${m.id}`)?.();
        else if (m.type === 'tick') onSnapshot(w, m.snapshot);
        else if (m.type === 'final') {
          final = m.snapshot;
          onSnapshot(w, m.snapshot);
        } else if (m.type === 'error') reject(new Error(`worker ${w}: ${m.message}`));
      });
      child.on('exit', (code) => (final ? resolve(final) : reject(new Error(`worker ${w} exited with ${code} before reporting`))));
      const request: WorkerRequest = {
        type: 'start',
        options: { url: options.url, profile: options.profile, insecure: options.insecure, ca: options.ca?.toString('base64'), workerIndex: w, workerCount: options.workers },
      };
      child.send(request);
    }),
  );
  options.signal?.addEventListener('abort', () => children.forEach((c) => c.connected && c.send({ type: 'stop' } satisfies WorkerRequest)));
  faultSinks.push((event) =>
    Promise.all(
      children.map(
        (c, w) =>
          new Promise<void>((resolve) => {
            if (!c.connected) return resolve();
            acks.set(`${w}/${event.id}`, resolve);
            c.send({ type: 'fault', event } satisfies WorkerRequest);
            // A worker that is finishing may never answer; the fault goes ahead anyway.
            setTimeout(resolve, 5_000).unref();
          }),
      ),
    ).then(() => undefined),
  );
  return Promise.all(finals);
}
