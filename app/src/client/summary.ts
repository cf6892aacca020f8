import type { FailoverReport, Latency, LoadReport } from './report-model';

/* The terminal summary of a finished run (the JSON and HTML reports carry the same numbers). */

/** What the verdict line adds when the run is INCONCLUSIVE. */
const INCONCLUSIVE_NOTE =
  ' (the thresholds passed, but the generator was the bottleneck: see the generator line; --accept-untrustworthy judges by the thresholds alone)';

/** The summary table printed at the end. */
export function formatSummary(r: LoadReport): string {
  const row = (name: string, l: Latency) =>
    `  ${name.padEnd(16)} ${[l.p50, l.p90, l.p99, l.p999, l.max].map((v) => v.toFixed(3).padStart(10)).join(' ')} ${String(l.count).padStart(9)}`;
  const kv = (o: Record<string, number>) =>
    Object.keys(o).length
      ? Object.entries(o)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')
      : 'none';
  const lines = [
    `target ${r.target}${r.profile?.protocol === 'centrifuge' ? ' (Centrifugo protocol)' : ''}  duration ${r.durationSeconds.toFixed(1)} s${r.interrupted ? '  (interrupted)' : ''}`,
    `connections  opened ${r.connections.opened}  failed ${r.connections.failed}  unfinished ${r.connections.unfinished}  peak ` +
      `${r.connections.peak}  reconnects ${r.connections.reconnects}  tls resumed ${r.connections.tlsResumed}`,
    `per replica  ${kv(r.connections.perReplica)}`,
    `opening      asked ${r.opening.askedPerSecond}/s  achieved ${r.opening.achievedPerSecond ?? '—'}/s  ` +
      `${r.opening.held ? 'held' : `NOT HELD: ${r.opening.bottleneck}`}  (at most ${r.opening.maxHandshakesInFlight} handshakes in flight)`,
    `messages     sent ${r.messages.sent}  received ${r.messages.received}  published ${r.messages.published}  notifications ${r.messages.notifications}  lost ${r.messages.lost}`,
    r.delivery.accounted
      ? `delivery     published ${r.delivery.published}  expected ${r.delivery.expected}  delivered ${r.delivery.delivered}  lost ${r.delivery.lost}`
      : `delivery     not accounted: without a broker, notifications carry no offsets (per-replica fan-out)`,
    `             cross-replica ${r.delivery.crossReplica}  duplicated ${r.delivery.duplicated}  reordered ${r.delivery.reordered} ` +
      ` recovered ${r.delivery.recovered}  unrecoverable ${r.delivery.unrecoverable}  publish retries ${r.delivery.publishRetries}`,
    ...(r.deltas
      ? [
          `deltas       full ${r.deltas.full}  applied ${r.deltas.applied}  data on the wire ${r.deltas.wireBytes} of ` +
            `${r.deltas.dataBytes} bytes (${r.deltas.dataBytes > 0 ? ((100 * r.deltas.wireBytes) / r.deltas.dataBytes).toFixed(1) : '—'}%)  verified ${r.deltas.verified}`,
        ]
      : []),
    ...(r.auth
      ? [
          `auth         tokens ${r.auth.tokens}  refreshed ${r.auth.refreshed}  denied ${r.auth.denied}  ` +
            `expired closes ${r.auth.expiredCloses}  revoked closes ${r.auth.revokedCloses}`,
        ]
      : []),
    '',
    `  latency (ms)            p50        p90        p99      p99.9        max     count`,
    row('connect', r.latency.connect),
    row('  tcp', r.latency.connect.tcp),
    row('  tls', r.latency.connect.tls),
    row('  upgrade', r.latency.connect.upgrade),
    row('ready (hello)', r.latency.ready),
    row('slot wait', r.latency.handshakeQueue),
    row('rtt (corrected)', r.latency.rtt),
    row('rtt (as sent)', r.latency.rttUncorrected),
    row('push', r.latency.push),
    '',
    `closes       expected: ${kv(r.closesExpected)}   unexpected: ${kv(r.closesUnexpected)}${Object.keys(r.closesFault).length ? `   by faults: ${kv(r.closesFault)}` : ''}`,
    ...r.faults.map(
      (f) =>
        `fault        ${f.id} at ${f.atSeconds.toFixed(1)} s${f.replica ? ` (${f.replica})` : ''}: ${f.closes} close(s), ${f.errors} error(s)`,
    ),
    ...(r.failover ? [formatFailover(r.failover)] : []),
    `errors       ${kv(r.errors)}`,
    `generator    ${r.generator.trustworthy ? 'ok' : `NOT TRUSTWORTHY: ${r.generator.reasons.join('; ')}`}  (event-loop lag p99 ` +
      `${r.generator.eventLoopLagP99Ms} ms, cpu max ${r.generator.cpuPercentMax}%, ${r.generator.workers} process(es), busy in ` +
      `${r.generator.busyIntervals} of ${r.generator.intervals} intervals after ${r.generator.warmupIntervals} warm-up second(s))`,
    ...r.thresholds.map((t) => `threshold    ${t.pass ? 'pass' : 'FAIL'}  ${t.expression}  (value ${t.value})`),
    `verdict      ${r.verdict}${r.verdict === 'INCONCLUSIVE' ? INCONCLUSIVE_NOTE : ''}`,
  ];
  return lines.join('\n');
}

/** One line for the summary. */
export function formatFailover(f: FailoverReport): string {
  const answered =
    f.seconds === undefined
      ? 'the virtual address never answered again'
      : `${f.to ?? 'the backup'} answering after ${f.seconds.toFixed(2)} s`;
  const back =
    f.allReconnectedSeconds === undefined
      ? `${f.reconnected} of ${f.dropped} back`
      : `all back after ${f.allReconnectedSeconds.toFixed(1)} s`;
  const peak = Math.max(0, ...f.storm.map((p) => p.opensPerSecond));
  return `failover     ${f.fault}: ${f.from} → ${answered}; ${f.dropped} dropped, ${f.refused} handshake(s) refused meanwhile, ${back}; storm peak ${peak} opens/s`;
}
