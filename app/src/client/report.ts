/** Builds the load report (the model: report-model.ts) from what a run recorded, and judges it. */
import type { LoadProfile } from '../shared/profile';
import type { FailoverReport, GeneratorHealth, Latency, MeasuredReport, TimelinePoint, Verdict } from './report-model';
import type { DeliveryAccount } from './delivery';
import type { FaultMark } from './faults';
import { failoverOf } from './failover';
import { summarize, usToMs, type Histogram, type Stats } from './stats';

/** The verdict of a finished run (see LoadReport.verdict). */
export function verdictOf(passed: boolean, generator: GeneratorHealth, acceptUntrustworthy: boolean): Verdict {
  if (!passed) return 'FAIL';
  return generator.trustworthy || acceptUntrustworthy ? 'PASS' : 'INCONCLUSIVE';
}

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
    ...(args.profile.delta
      ? {
          deltas: {
            full: s.counters.deltaFull,
            applied: s.counters.deltaApplied,
            wireBytes: s.counters.deltaWireBytes,
            dataBytes: s.counters.deltaDataBytes,
            verified: s.counters.deltaVerified,
          },
        }
      : {}),
    ...(args.profile.tokens
      ? {
          auth: {
            tokens: s.counters.tokens,
            refreshed: s.counters.refreshed,
            denied: s.counters.denied,
            expiredCloses: s.counters.expiredCloses,
            revokedCloses: s.counters.revokedCloses,
          },
        }
      : {}),
    latency: {
      connect: { ...lat('connect'), tcp: lat('tcp'), tls: lat('tls'), upgrade: lat('upgrade') },
      rtt: lat('rtt'),
      rttUncorrected: lat('rttUncorrected'),
      push: lat('push'),
      handshakeQueue: lat('handshakeQueue'),
      ready: lat('ready'),
    },
    spectrum: { connect: spectrumOf(s.histograms.connect), rtt: spectrumOf(s.histograms.rtt), push: spectrumOf(s.histograms.push) },
    closes,
    closesExpected,
    closesUnexpected,
    closesFault,
    faults: (args.faults ?? []).map((f) => ({
      ...f,
      closes: s.faultCloses.get(f.id) ?? 0,
      errors: s.faultErrors.get(f.id) ?? 0,
      reconnected: s.faultReconnects.get(f.id)?.[0] ?? 0,
    })),
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
  const failover = failoverOf(
    mark,
    { closes: s.faultCloses.get(mark.id) ?? 0, errors: s.faultErrors.get(mark.id) ?? 0, reconnected, lastReconnectEpochMs: last },
    timeline,
  );
  return failover ? { failover } : {};
}

/** Percentiles of a spectrum: ten a decade of 1/(1 − p), 0% through 99.999%. */
const SPECTRUM_PERCENTILES = Array.from({ length: 51 }, (_, i) => 100 * (1 - 10 ** (-i / 10)));

function spectrumOf(h: Histogram): [number, number][] {
  if (!h.totalCount) return [];
  return [
    ...SPECTRUM_PERCENTILES.map((p): [number, number] => [Math.round(p * 1e4) / 1e4, usToMs(h.getValueAtPercentile(p))]),
    [100, usToMs(h.maxValue)],
  ];
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
  } else
    bottleneck =
      'neither the client nor the handshake slots were saturated: connections failed or closed during the ramp (see errors and closes)';
  return { ...base, bottleneck };
}
