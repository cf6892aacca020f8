import { fork, type ChildProcess } from 'node:child_process';
import { extname, join } from 'node:path';
import { peakConnections, type LoadProfile } from '../shared/profile';
import { CONNECTIONS_PER_PROCESS } from '../topology/limits';
import { settleDeliveries, type DeliveryAccount } from './delivery';
import { tellFault, type FaultEvent, type FaultMark, type FaultNotice } from './faults';
import { GeneratorHealthJudge } from './generator-health';
import type { GeneratorHealth, TimelinePoint } from './report-model';
import { Runner, type FinalSnapshot, type RunnerOptions, type Snapshot } from './runner';
import { decodeInterval, encodeInterval, Stats, type EncodedInterval } from './stats';
import { Timeline, type Progress } from './timeline';

export type { Progress } from './timeline';

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

export interface LoadRunResult {
  stats: Stats;
  peak: number;
  timeline: TimelinePoint[];
  generator: GeneratorHealth;
  durationSeconds: number;
  interrupted: boolean;
  /** The injected faults, when they came. */
  faults: FaultMark[];
  /** What the broker stored against what the subscribers got, over every process. */
  deliveryAccount: DeliveryAccount;
  /** The first stage's ramp: the rate asked, and when all its connections were open (every process's share). */
  ramp: { connections: number; askedPerSecond: number; allOpenSeconds?: number };
}

export function workersFor(profile: LoadProfile): number {
  if (profile.workers > 0) return profile.workers;
  return Math.max(1, Math.ceil(peakConnections(profile) / CONNECTIONS_PER_PROCESS));
}

/**
 * Runs the load in this process or in several worker processes, and merges their measurements
 * exactly: counters add, HDR histograms are added bucket by bucket (never averaged).
 */
export async function runLoad(options: LoadRunOptions): Promise<LoadRunResult> {
  const started = performance.now();
  const timeline = new Timeline(Math.max(1, options.workers), started, options.onProgress);
  const health = new GeneratorHealthJudge();
  const faults: FaultMark[] = [];
  const faultSinks: FaultSinks = [];
  const since = () => Math.round((performance.now() - started) / 100) / 10;
  options.faultChannel?.(async (event) => {
    const mark = event.over ? faults.find((f) => f.id === event.id) : undefined;
    if (mark) Object.assign(mark, { overAtSeconds: since(), ...(event.failover ? { failover: event.failover } : {}) });
    else if (!event.over) faults.push({ ...event, atSeconds: since(), atEpochMs: Date.now() });
    await Promise.all(faultSinks.map((sink) => sink(event)));
  });
  const onSnapshot = (worker: number, s: Snapshot) => {
    health.observe(s);
    timeline.add(worker, s);
  };
  const finals =
    options.workers <= 1 ? [await runInProcess(options, onSnapshot, faultSinks)] : await runInWorkers(options, onSnapshot, faultSinks);

  const stats = Stats.merge(finals.map((f) => f.stats));
  return {
    stats,
    peak: options.workers <= 1 ? stats.peak : Math.max(timeline.peak, stats.open),
    timeline: timeline.points,
    generator: health.verdict(Math.max(1, options.workers)),
    durationSeconds: (performance.now() - started) / 1000,
    interrupted: options.signal?.aborted ?? false,
    faults,
    deliveryAccount: settleDeliveries(finals.flatMap((f) => (f.ledger ? [f.ledger] : []))),
    ramp: {
      connections: options.profile.stages[0].connections,
      askedPerSecond: options.profile.stages[0].rampRate,
      allOpenSeconds: finals.every((f) => f.firstStageOpenMs !== undefined)
        ? Math.max(...finals.map((f) => f.firstStageOpenMs!)) / 1000
        : undefined,
    },
  };
}

/** Each resolves once its process knows of the fault. */
type FaultSinks = ((event: FaultEvent) => Promise<void>)[];

function runInProcess(
  options: LoadRunOptions,
  onSnapshot: (w: number, s: Snapshot) => void,
  faultSinks: FaultSinks,
): Promise<FinalSnapshot> {
  const runner = new Runner({
    url: options.url,
    profile: options.profile,
    ca: options.ca,
    insecure: options.insecure,
    workerIndex: 0,
    workerCount: 1,
  });
  faultSinks.push(async (event) => runner.addFault(event));
  return runner.run((s) => onSnapshot(0, s), options.signal);
}

/** A snapshot as it crosses between processes: its interval's histograms encoded. */
export type OverIpc<S extends Snapshot> = Omit<S, 'interval'> & { interval: EncodedInterval };

export function toIpc<S extends Snapshot>(s: S): OverIpc<S> {
  return { ...s, interval: encodeInterval(s.interval) };
}

function fromIpc<S extends Snapshot>(s: OverIpc<S>): S {
  return { ...s, interval: decodeInterval(s.interval) } as S;
}

/** Messages between the coordinator and a worker process. */
export type WorkerRequest =
  | { type: 'start'; options: Omit<RunnerOptions, 'ca'> & { ca?: string } }
  | { type: 'stop' }
  | Extract<FaultNotice, { type: 'fault' }>;
export type WorkerReply =
  | { type: 'tick'; snapshot: OverIpc<Snapshot> }
  | { type: 'final'; snapshot: OverIpc<FinalSnapshot> }
  | { type: 'error'; message: string }
  | Extract<FaultNotice, { type: 'fault-ack' }>;

function runInWorkers(
  options: LoadRunOptions,
  onSnapshot: (w: number, s: Snapshot) => void,
  faultSinks: FaultSinks,
): Promise<FinalSnapshot[]> {
  const entry = join(__dirname, `worker${extname(__filename)}`);
  const children: ChildProcess[] = [];
  const finals = Array.from(
    { length: options.workers },
    (_, w) =>
      new Promise<FinalSnapshot>((resolve, reject) => {
        const child = fork(entry, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        children.push(child);
        let final: FinalSnapshot | undefined;
        child.on('message', (m: WorkerReply) => {
          if (m.type === 'tick') onSnapshot(w, fromIpc(m.snapshot));
          else if (m.type === 'final') {
            final = fromIpc(m.snapshot);
            onSnapshot(w, final);
          } else if (m.type === 'error') reject(new Error(`worker ${w}: ${m.message}`));
        });
        child.on('exit', (code) => (final ? resolve(final) : reject(new Error(`worker ${w} exited with ${code} before reporting`))));
        const request: WorkerRequest = {
          type: 'start',
          options: {
            url: options.url,
            profile: options.profile,
            insecure: options.insecure,
            ca: options.ca?.toString('base64'),
            workerIndex: w,
            workerCount: options.workers,
          },
        };
        child.send(request);
      }),
  );
  options.signal?.addEventListener('abort', () => children.forEach((c) => c.connected && c.send({ type: 'stop' } satisfies WorkerRequest)));
  faultSinks.push((event) => Promise.all(children.map((c) => tellFault(c, event))).then(() => undefined));
  return Promise.all(finals);
}
