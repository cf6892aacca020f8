import { readFileSync } from 'node:fs';
import { runLoad, type Progress } from '../app/src/client/coordinator';
import { buildReport } from '../app/src/client/report';
import type { MeasuredReport } from '../app/src/client/report-model';
import { newHistogram, summarize } from '../app/src/client/stats';
import type { LoadProfile, LoadProfileInput } from '../app/src/shared/profile';
import { defineTopology, type TopologyInput, withoutAuth } from '../app/src/topology';
import { nginxVersion, startLocalRun } from '../local/run';
import { cpuBetween, cpuSeconds } from './proc';

/**
 * One fan-out measurement on a fresh local topology (nginx with TLS, 3 replicas, nats-server, the
 * load client): the benches that measure fan-out (fanout.ts, compression-bench.ts) share it.
 */
/** The fan-out bench's publication rate through the broker: 24,000 deliveries/s offered to 10,000 subscribers on 10 topics. */
export const FANOUT_PUBLISH_RATE = 24;

export interface FanoutSpec {
  mode: string;
  broker: boolean;
  /** Publications per second, across all publishers. */
  publishRate: number;
  /** The share of a topic's subscribers one publication reaches (a third without the broker). */
  reach: number;
  subscribers: number;
  topics: number;
  rampRate: number;
  holdMs: number;
  workers: number;
  server?: TopologyInput['server'];
  /** Proxy settings beside the sizing the spec derives (e.g. relayBufferBytes). */
  proxy?: Partial<TopologyInput['proxy']>;
  /** Profile fields beside the publishers-only defaults (payload, compression, delta, protocol). */
  load?: Partial<LoadProfileInput>;
  /**
   * Measure even if not everyone connects: the window then starts 30 s after the ramp's asked end,
   * and the row says how many were open (a saturated machine's figures, not a latency measurement).
   * @default false: fewer than all open is an error
   */
  partial?: boolean;
}

export interface Row {
  mode: string;
  broker: boolean;
  writeCoalescing: 'turn' | 'off';
  protocol: LoadProfile['protocol'];
  publishRate: number;
  offeredPerSecond: number;
  /** Mean over the window, and the slowest and fastest second in it. */
  deliveredPerSecond: number;
  slowestSecond: number;
  fastestSecond: number;
  report: MeasuredReport;
  /** Push latency (ms) in the measured window only; the report's covers the ramp too. */
  push: { p50: number; p99: number; p999: number; max: number; count: number };
  /** Connections open when the window started. */
  openAtStart: number;
  cpu: Record<string, number>;
  /** Of `cpu`, the seconds each part spent in the kernel (system time). */
  kernel: Record<string, number>;
  holdSeconds: number;
}

export async function measureFanout(spec: FanoutSpec): Promise<Row> {
  const { mode, subscribers, rampRate, holdMs } = spec;
  const version = nginxVersion();
  if (!version) throw new Error('nginx is required (apt-get install nginx-light)');
  const topology = defineTopology(
    withoutAuth({
      replicas: 3,
      broker: { enabled: spec.broker },
      server: spec.server ?? {},
      proxy: { ...spec.proxy, nginxVersion: version, targetConnections: Math.max(10_000, subscribers) },
      load: {
        stages: [{ connections: subscribers, rampRate, holdMs }],
        // Publishers only (1 in 100), no echoes: what flows is notifications.
        senderFraction: 0.01,
        messageRate: 0,
        topics: spec.topics,
        publishRate: spec.publishRate,
        workers: spec.workers,
        thresholds: [],
        maxDurationMs: holdMs + Math.ceil((subscribers / rampRate) * 1000) + 120_000,
        ...spec.load,
      },
    }),
  );
  console.error(`${mode}: starting the local topology`);
  const local = await startLocalRun(topology);
  // The hold starts once every user exists (the ramp's asked end); the measured window, once all
  // of them are connected and subscribed (a few seconds after the last opened) to the hold's end.
  const windowEnd = subscribers / rampRate + holdMs / 1000 - 1;
  let windowStart = spec.partial ? subscribers / rampRate + 30 : Infinity;
  let openAtStart = 0;
  const pushInWindow = newHistogram();
  let cpuAtStart: ReturnType<typeof cpuSeconds> | undefined;
  let cpuAtEnd: ReturnType<typeof cpuSeconds> | undefined;
  const startedAt = new Date();
  let result: Awaited<ReturnType<typeof runLoad>>;
  try {
    result = await runLoad({
      url: local.url,
      ca: readFileSync(local.caFile),
      insecure: false,
      workers: topology.load.workers,
      profile: topology.load,
      onProgress: (p: Progress) => {
        if (p.open >= subscribers && p.elapsedSeconds + 5 < windowStart && !cpuAtStart) windowStart = p.elapsedSeconds + 5;
        if (!cpuAtStart && p.elapsedSeconds >= windowStart) {
          cpuAtStart = cpuSeconds();
          openAtStart = p.open;
        }
        if (!cpuAtEnd && p.elapsedSeconds >= windowEnd) cpuAtEnd = cpuSeconds();
        if (p.elapsedSeconds >= windowStart && p.elapsedSeconds <= windowEnd) pushInWindow.add(p.intervalPush);
        if (Math.floor(p.elapsedSeconds) % 10 === 0)
          console.error(`${mode}: ${p.elapsedSeconds.toFixed(0)} s, open ${p.open}, received/s ${p.receivedPerSecond}`);
      },
    });
  } finally {
    await local.stop();
  }
  const report = buildReport({ ...result, target: local.url, startedAt, profile: topology.load });
  if (windowEnd - windowStart < 10)
    throw new Error(
      `${mode}: fewer than 10 s measured with everyone connected (all ${subscribers} open at ${windowStart - 5} s): a longer --hold`,
    );
  const window = report.timeline.filter((p) => p.t >= windowStart && p.t <= windowEnd);
  const rates = window.map((p) => p.receivedPerSecond);
  const mean = rates.length ? Math.round(rates.reduce((a, b) => a + b, 0) / rates.length) : 0;
  return {
    mode,
    broker: spec.broker,
    writeCoalescing: topology.server.writeCoalescing,
    protocol: topology.load.protocol,
    publishRate: spec.publishRate,
    offeredPerSecond: Math.round(spec.publishRate * (subscribers / spec.topics) * spec.reach),
    deliveredPerSecond: mean,
    slowestSecond: Math.min(...rates),
    fastestSecond: Math.max(...rates),
    report,
    push: summarize(pushInWindow, { p50: 50, p99: 99, p999: 99.9 }) as Row['push'],
    openAtStart,
    cpu: cpuAtStart && cpuAtEnd ? cpuBetween(cpuAtStart, cpuAtEnd) : {},
    kernel: cpuAtStart && cpuAtEnd ? cpuBetween(cpuAtStart, cpuAtEnd, 'system') : {},
    holdSeconds: windowEnd - windowStart,
  };
}

/** CPU per delivery in the window (µs), every part's together: all of it, or its time in the kernel. */
export function perDeliveryUs(r: Row, which: 'cpu' | 'kernel' = 'cpu'): number {
  const seconds = Object.values(r[which]).reduce((a, b) => a + b, 0);
  return r.deliveredPerSecond ? Math.round((seconds / (r.deliveredPerSecond * r.holdSeconds)) * 1e6) : 0;
}

/** One part's CPU per delivery in the window (µs): all of it, or its time in the kernel. */
export function partUs(r: Row, part: string, which: 'cpu' | 'kernel' = 'cpu'): number {
  return r.deliveredPerSecond ? Math.round(((r[which][part] ?? 0) / (r.deliveredPerSecond * r.holdSeconds)) * 1e6) : 0;
}
