import type { LoadProfile } from '../shared/profile';
import type { DeliveryAccount } from './delivery';
import type { FaultMark } from './faults';
import { failoverOf, formatFailover, type FailoverReport } from './failover';
import { summarize, usToMs, type Histogram, type Stats } from './stats';

/** One second of the run, for the charts. */
export interface TimelinePoint {
  t: number;
  /** Connections the ramp asks for by now (virtual users started), and those open. */
  asked: number;
  open: number;
  /** Open connections by the replica they landed on. */
  openPerReplica: Record<string, number>;
  /** Connections the ramp asked to open this second (new users), and those that opened (reconnects included). */
  askedOpensPerSecond: number;
  opensPerSecond: number;
  sentPerSecond: number;
  receivedPerSecond: number;
  rttP50: number;
  rttP99: number;
  /** Publish → delivery this second (0 without notifications). */
  pushP50: number;
  pushP99: number;
  errors: number;
  closes: number;
  /** The load generator's own load this second, its busiest process: event-loop lag p99 (ms) and CPU (%). */
  generatorLagP99Ms: number;
  generatorCpuPercent: number;
}

export interface GeneratorHealth {
  /** False when the load generator itself was the bottleneck: its numbers then overstate latency. */
  trustworthy: boolean;
  reasons: string[];
  eventLoopLagP99Ms: number;
  eventLoopLagMaxMs: number;
  cpuPercentMax: number;
  /**
   * Every process's one-second intervals after its first, and those where it lagged or was
   * CPU-bound (too large a share makes the run untrustworthy).
   */
  intervals: number;
  busyIntervals: number;
  /** Each process's first second, its warm-up: left out of the count (generator-health.ts). */
  warmupIntervals: number;
  workers: number;
}

export interface ThresholdResult {
  expression: string;
  value: number;
  pass: boolean;
}

/** The JSON report (`--report FILE`). Times are milliseconds. */
export interface LoadReport {
  target: string;
  startedAt: string;
  durationSeconds: number;
  interrupted: boolean;
  /** `tlsResumed`: connections whose TLS session was resumed (reconnects offer their last one). */
  connections: {
    opened: number;
    failed: number;
    /** Handshakes still in flight when the run ended, cut off by the client: not errors. */
    unfinished: number;
    peak: number;
    reconnects: number;
    tlsResumed: number;
    perReplica: Record<string, number>;
  };
  /**
   * The first stage's ramp: the opening rate asked, the rate achieved (its connections over the
   * time until all were open; null if they never all were), whether it held (≥ 90% of asked), and
   * when it did not, what limited it.
   */
  opening: { askedPerSecond: number; achievedPerSecond: number | null; held: boolean; maxHandshakesInFlight: number; bottleneck?: string };
  messages: { sent: number; received: number; bytesSent: number; bytesReceived: number; published: number; notifications: number; lost: number; serverErrors: number };
  /**
   * Notifications through a broker (they carry offsets): publications the broker acknowledged,
   * deliveries owed to subscribers and owed but never received (client/delivery.ts), duplicates
   * and out-of-order ones per subscriber, deliveries from another replica than the subscriber's,
   * and subscriptions after a reconnect that recovered what was missed or could not (the
   * application would reload). `accounted` is false without a broker: nothing carries an offset,
   * so nothing can be owed, and thresholds on published/expected/lost fail.
   */
  delivery: {
    accounted: boolean;
    published: number;
    expected: number;
    delivered: number;
    lost: number;
    crossReplica: number;
    duplicated: number;
    reordered: number;
    recovered: number;
    unrecoverable: number;
    publishRetries: number;
  };
  latency: {
    connect: Latency & { tcp: Latency; tls: Latency; upgrade: Latency };
    /** Corrected for coordinated omission: timed from when each message was due. */
    rtt: Latency;
    /** Timed from when each message was actually sent (what most tools report). */
    rttUncorrected: Latency;
    /** Publish → notification delivery. */
    push: Latency;
    /** Waiting for a handshake slot (maxHandshakesInFlight): the client's own queue, not the target. */
    handshakeQueue: Latency;
  };
  /**
   * Latency percentile spectra, HdrHistogram-plotter style: [percentile, ms] from 0% through
   * 99.999% (ten points a decade of 1/(1 − p)) and 100% (the max). Empty when nothing was measured.
   */
  spectrum: Record<'connect' | 'rtt' | 'push', [number, number][]>;
  closes: Record<string, number>;
  /** Ours (the run ending) and the server's reconnect requests (1001 going away, 1012, 1013). */
  closesExpected: Record<string, number>;
  /** Connections cut: what a healthy system never does. Excludes closes caused by an injected fault. */
  closesUnexpected: Record<string, number>;
  /** Closes caused by injected faults (see `faults`), by code. */
  closesFault: Record<string, number>;
  /** Faults injected during the run (the local topology's --fault), with the closes and errors each caused. */
  faults: (FaultMark & { closes: number; errors: number; reconnected: number })[];
  /** Present when a fault cut every connection (kill-proxy, stop-proxy of the HA pair): what its failover cost. */
  failover?: FailoverReport;
  errors: Record<string, number>;
  thresholds: ThresholdResult[];
  /** Every threshold passed (and the run was not interrupted). */
  passed: boolean;
  /**
   * PASS: the thresholds passed and the generator was trustworthy (or that was accepted with
   * `acceptUntrustworthy`); FAIL: a threshold failed; INCONCLUSIVE: they passed, but the
   * generator was the bottleneck, so its numbers describe the client more than the system.
   */
  verdict: Verdict;
  generator: GeneratorHealth;
  timeline: TimelinePoint[];
  profile: LoadProfile;
}

export type Verdict = 'PASS' | 'FAIL' | 'INCONCLUSIVE';

/** What a run measured, before it is judged (thresholds, verdict). */
export type MeasuredReport = Omit<LoadReport, 'thresholds' | 'passed' | 'verdict'>;

/** The verdict of a finished run (see LoadReport.verdict). */
export function verdictOf(passed: boolean, generator: GeneratorHealth, acceptUntrustworthy: boolean): Verdict {
  if (!passed) return 'FAIL';
  return generator.trustworthy || acceptUntrustworthy ? 'PASS' : 'INCONCLUSIVE';
}

type Latency = { p50: number; p90: number; p99: number; p999: number; max: number; count: number };
const PCTS = { p50: 50, p90: 90, p99: 99, p999: 99.9 };

export function buildReport(args: {
  stats: Stats;
  target: string;
  startedAt: Date;
  durationSeconds: number;
  interrupted: boolean;
  peak: number;
  generator: GeneratorHealth;
  timeline: TimelinePoint[];
  profile: LoadProfile;
  faults?: FaultMark[];
  deliveryAccount: DeliveryAccount;
  ramp: { connections: number; askedPerSecond: number; allOpenSeconds?: number };
}): MeasuredReport {
  const { stats: s } = args;
  const lat = (h: keyof typeof s.histograms) => summarize(s.histograms[h], PCTS) as Latency;
  const closes: Record<string, number> = {};
  const closesExpected: Record<string, number> = {};
  const closesUnexpected: Record<string, number> = {};
  const closesFault: Record<string, number> = {};
  for (const [code, [expected, unexpected, fault]] of [...s.closes].sort((a, b) => a[0] - b[0])) {
    closes[code] = expected + unexpected + fault;
    if (expected) closesExpected[code] = expected;
    if (unexpected) closesUnexpected[code] = unexpected;
    if (fault) closesFault[code] = fault;
  }
  return {
    target: args.target,
    startedAt: args.startedAt.toISOString(),
    durationSeconds: Math.round(args.durationSeconds * 1000) / 1000,
    interrupted: args.interrupted,
    opening: openingOf(args.ramp, args.profile.maxHandshakesInFlight, args.generator, lat('connect'), lat('handshakeQueue')),
    connections: {
      opened: s.counters.opened,
      failed: s.counters.failed,
      unfinished: s.counters.unfinished,
      peak: Math.max(args.peak, 0),
      reconnects: s.counters.reconnects,
      tlsResumed: s.counters.tlsResumed,
      perReplica: Object.fromEntries([...s.perReplica].sort()),
    },
    messages: {
      sent: s.counters.sent,
      received: s.counters.received,
      bytesSent: s.counters.bytesSent,
      bytesReceived: s.counters.bytesReceived,
      published: s.counters.published,
      notifications: s.counters.notifications,
      lost: s.counters.lost,
      serverErrors: s.counters.serverErrors,
    },
    delivery: {
      accounted: args.deliveryAccount.windows > 0,
      published: args.deliveryAccount.published,
      expected: args.deliveryAccount.expected,
      delivered: s.counters.notifications,
      lost: args.deliveryAccount.lost,
      crossReplica: s.counters.crossReplica,
      duplicated: s.counters.duplicated,
      reordered: s.counters.reordered,
      recovered: s.counters.recovered,
      unrecoverable: s.counters.unrecoverable,
      publishRetries: s.counters.publishRetries,
    },
    latency: {
      connect: { ...lat('connect'), tcp: lat('tcp'), tls: lat('tls'), upgrade: lat('upgrade') },
      rtt: lat('rtt'),
      rttUncorrected: lat('rttUncorrected'),
      push: lat('push'),
      handshakeQueue: lat('handshakeQueue'),
    },
    spectrum: { connect: spectrumOf(s.histograms.connect), rtt: spectrumOf(s.histograms.rtt), push: spectrumOf(s.histograms.push) },
    closes,
    closesExpected,
    closesUnexpected,
    closesFault,
    faults: (args.faults ?? []).map((f) => ({ ...f, closes: s.faultCloses.get(f.id) ?? 0, errors: s.faultErrors.get(f.id) ?? 0, reconnected: s.faultReconnects.get(f.id)?.[0] ?? 0 })),
    ...failoverField(args.faults ?? [], s, args.timeline),
    errors: Object.fromEntries([...s.errors].sort()),
    generator: args.generator,
    timeline: args.timeline,
    profile: args.profile,
  };
}

/** The first fault that cut every connection, as its failover. */
function failoverField(faults: FaultMark[], s: Stats, timeline: TimelinePoint[]): { failover?: FailoverReport } {
  const mark = faults.find((f) => f.cutsAll);
  if (!mark) return {};
  const [reconnected, last] = s.faultReconnects.get(mark.id) ?? [0, undefined];
  const failover = failoverOf(mark, { closes: s.faultCloses.get(mark.id) ?? 0, errors: s.faultErrors.get(mark.id) ?? 0, reconnected, lastReconnectEpochMs: last }, timeline);
  return failover ? { failover } : {};
}

/** Percentiles of a spectrum: ten a decade of 1/(1 − p), 0% through 99.999%. */
const SPECTRUM_PERCENTILES = Array.from({ length: 51 }, (_, i) => 100 * (1 - 10 ** (-i / 10)));

function spectrumOf(h: Histogram): [number, number][] {
  if (!h.totalCount) return [];
  return [...SPECTRUM_PERCENTILES.map((p): [number, number] => [Math.round(p * 1e4) / 1e4, usToMs(h.getValueAtPercentile(p))]), [100, usToMs(h.maxValue)]];
}

/** Below this share of the asked rate, the ramp did not hold. */
const RAMP_HELD_SHARE = 0.9;
/** A handshake that waited longer than this for a slot found them all taken. */
const SLOTS_FULL_MS = 5;

/** The ramp as achieved, and when it fell short, why (see LoadReport.opening). */
export function openingOf(
  ramp: { connections: number; askedPerSecond: number; allOpenSeconds?: number },
  maxHandshakesInFlight: number,
  generator: GeneratorHealth,
  connect: Latency,
  queue: Latency,
): MeasuredReport['opening'] {
  const achieved = ramp.allOpenSeconds ? Math.round(ramp.connections / ramp.allOpenSeconds) : null;
  const held = achieved !== null && achieved >= RAMP_HELD_SHARE * ramp.askedPerSecond;
  const base = { askedPerSecond: ramp.askedPerSecond, achievedPerSecond: achieved, held, maxHandshakesInFlight };
  if (held) return base;
  let bottleneck: string;
  if (!generator.trustworthy) bottleneck = 'the load client: its event loop or CPU (see generator); more workers, or a lower rate';
  else if (queue.p99 > SLOTS_FULL_MS) {
    const sustained = connect.p50 > 0 ? Math.round((maxHandshakesInFlight / connect.p50) * 1000) : 0;
    bottleneck = `the target's handshake time: ${maxHandshakesInFlight} in flight at connect p50 ${connect.p50} ms sustain about ${sustained}/s (handshakes waited for a slot: p99 ${queue.p99} ms)`;
  } else bottleneck = 'neither the client nor the handshake slots were saturated: connections failed or closed during the ramp (see errors and closes)';
  return { ...base, bottleneck };
}

/** The summary table printed at the end. */
export function formatSummary(r: LoadReport): string {
  const row = (name: string, l: Latency) =>
    `  ${name.padEnd(16)} ${[l.p50, l.p90, l.p99, l.p999, l.max].map((v) => v.toFixed(3).padStart(10)).join(' ')} ${String(l.count).padStart(9)}`;
  const kv = (o: Record<string, number>) => (Object.keys(o).length ? Object.entries(o).map(([k, v]) => `${k}=${v}`).join(' ') : 'none');
  const lines = [
    `target ${r.target}  duration ${r.durationSeconds.toFixed(1)} s${r.interrupted ? '  (interrupted)' : ''}`,
    `connections  opened ${r.connections.opened}  failed ${r.connections.failed}  unfinished ${r.connections.unfinished}  peak ${r.connections.peak}  reconnects ${r.connections.reconnects}  tls resumed ${r.connections.tlsResumed}`,
    `per replica  ${kv(r.connections.perReplica)}`,
    `opening      asked ${r.opening.askedPerSecond}/s  achieved ${r.opening.achievedPerSecond ?? '—'}/s  ${r.opening.held ? 'held' : `NOT HELD: ${r.opening.bottleneck}`}  (at most ${r.opening.maxHandshakesInFlight} handshakes in flight)`,
    `messages     sent ${r.messages.sent}  received ${r.messages.received}  published ${r.messages.published}  notifications ${r.messages.notifications}  lost ${r.messages.lost}`,
    r.delivery.accounted
      ? `delivery     published ${r.delivery.published}  expected ${r.delivery.expected}  delivered ${r.delivery.delivered}  lost ${r.delivery.lost}`
      : `delivery     not accounted: without a broker, notifications carry no offsets (per-replica fan-out)`,
    `             cross-replica ${r.delivery.crossReplica}  duplicated ${r.delivery.duplicated}  reordered ${r.delivery.reordered}  recovered ${r.delivery.recovered}  unrecoverable ${r.delivery.unrecoverable}  publish retries ${r.delivery.publishRetries}`,
    '',
    `  latency (ms)            p50        p90        p99      p99.9        max     count`,
    row('connect', r.latency.connect),
    row('  tcp', r.latency.connect.tcp),
    row('  tls', r.latency.connect.tls),
    row('  upgrade', r.latency.connect.upgrade),
    row('slot wait', r.latency.handshakeQueue),
    row('rtt (corrected)', r.latency.rtt),
    row('rtt (as sent)', r.latency.rttUncorrected),
    row('push', r.latency.push),
    '',
    `closes       expected: ${kv(r.closesExpected)}   unexpected: ${kv(r.closesUnexpected)}${Object.keys(r.closesFault).length ? `   by faults: ${kv(r.closesFault)}` : ''}`,
    ...r.faults.map((f) => `fault        ${f.id} at ${f.atSeconds.toFixed(1)} s${f.replica ? ` (${f.replica})` : ''}: ${f.closes} close(s), ${f.errors} error(s)`),
    ...(r.failover ? [formatFailover(r.failover)] : []),
    `errors       ${kv(r.errors)}`,
    `generator    ${r.generator.trustworthy ? 'ok' : 'NOT TRUSTWORTHY: ' + r.generator.reasons.join('; ')}  (event-loop lag p99 ${r.generator.eventLoopLagP99Ms} ms, cpu max ${r.generator.cpuPercentMax}%, ${r.generator.workers} process(es), busy in ${r.generator.busyIntervals} of ${r.generator.intervals} intervals after ${r.generator.warmupIntervals} warm-up second(s))`,
    ...r.thresholds.map((t) => `threshold    ${t.pass ? 'pass' : 'FAIL'}  ${t.expression}  (value ${t.value})`),
    `verdict      ${r.verdict}${r.verdict === 'INCONCLUSIVE' ? ' (the thresholds passed, but the generator was the bottleneck: see the generator line; --accept-untrustworthy judges by the thresholds alone)' : ''}`,
  ];
  return lines.join('\n');
}
