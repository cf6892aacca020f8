import type { MeasuredReport, ThresholdResult } from './report-model';

const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

/** Values thresholds can name; each reads the report. */
export const THRESHOLD_METRICS: Record<string, (r: MeasuredReport) => number> = {
  errors: (r) => sum(r.errors),
  'connections.failed': (r) => r.connections.failed,
  'connections.opened': (r) => r.connections.opened,
  'connections.unfinished': (r) => r.connections.unfinished,
  'connections.peak': (r) => r.connections.peak,
  reconnects: (r) => r.connections.reconnects,
  'closes.unexpected': (r) => sum(r.closesUnexpected),
  'closes.fault': (r) => sum(r.closesFault),
  // Without a proxy fault there is no failover: NaN, so a threshold on it fails rather than passes.
  'failover.seconds': (r) => r.failover?.seconds ?? NaN,
  'failover.dropped': (r) => r.failover?.dropped ?? NaN,
  'failover.allReconnectedSeconds': (r) => r.failover?.allReconnectedSeconds ?? NaN,
  'messages.sent': (r) => r.messages.sent,
  'messages.received': (r) => r.messages.received,
  'messages.lost': (r) => r.messages.lost,
  ...Object.fromEntries(
    (['delivered', 'crossReplica', 'duplicated', 'reordered', 'recovered', 'unrecoverable', 'publishRetries'] as const).map((k) => [
      `delivery.${k}`,
      (r: MeasuredReport) => r.delivery[k],
    ]),
  ),
  // Without a broker nothing is owed: NaN fails every comparison, so the threshold cannot pass by default.
  ...Object.fromEntries(
    (['published', 'expected', 'lost'] as const).map((k) => [
      `delivery.${k}`,
      (r: MeasuredReport) => (r.delivery.accounted ? r.delivery[k] : NaN),
    ]),
  ),
  // Without tokens there is no auth section: NaN, so a threshold on it fails rather than passes.
  ...Object.fromEntries(
    (['tokens', 'refreshed', 'denied', 'expiredCloses', 'revokedCloses'] as const).map((k) => [
      `auth.${k}`,
      (r: MeasuredReport) => r.auth?.[k] ?? NaN,
    ]),
  ),
  ...Object.fromEntries(
    (['connect', 'ready', 'rtt', 'rttUncorrected', 'push'] as const).flatMap((h) =>
      (['p50', 'p90', 'p99', 'p999', 'max'] as const).map((p) => [`${h}.${p}`, (r: MeasuredReport) => r.latency[h][p]]),
    ),
  ),
};

const OPS = {
  '<=': (a: number, b: number) => a <= b,
  '>=': (a: number, b: number) => a >= b,
  '==': (a: number, b: number) => a === b,
  '!=': (a: number, b: number) => a !== b,
  '<': (a: number, b: number) => a < b,
  '>': (a: number, b: number) => a > b,
};
type Op = keyof typeof OPS;

export interface Threshold {
  expression: string;
  metric: string;
  op: Op;
  value: number;
}

/** Parses "rtt.p99<50" or "errors==0"; throws a message naming what is wrong. */
export function parseThreshold(expression: string): Threshold {
  const match = /^\s*([a-zA-Z.0-9]+)\s*(<=|>=|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$/.exec(expression);
  if (!match) throw new Error(`"${expression}" is not a threshold (metric, one of < <= > >= == !=, number: e.g. rtt.p99<50)`);
  const [, metric, op, value] = match;
  if (!(metric in THRESHOLD_METRICS)) {
    throw new Error(`"${metric}" is not a metric thresholds know (${Object.keys(THRESHOLD_METRICS).join(', ')})`);
  }
  return { expression: `${metric}${op}${value}`, metric, op: op as Op, value: Number(value) };
}

export function evaluateThresholds(report: MeasuredReport, thresholds: Threshold[]): ThresholdResult[] {
  return thresholds.map((t) => {
    const value = THRESHOLD_METRICS[t.metric](report);
    return { expression: t.expression, value, pass: OPS[t.op](value, t.value) };
  });
}
