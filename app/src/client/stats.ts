import * as hdr from 'hdr-histogram-js';

/**
 * Measurements of one load process, mergeable across processes without loss: histograms are
 * HDR (microsecond values, 3 significant digits, constant memory however long the run) and
 * travel encoded, so merging adds the histograms themselves rather than averaging percentiles.
 */
export type Histogram = hdr.Histogram;

/** One hour in microseconds: the largest latency recorded exactly (larger values are clamped). */
const HIGHEST_US = 3_600_000_000;

export function newHistogram(): Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIGHEST_US,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });
}

/** Records a duration given in milliseconds (fractions allowed) as whole microseconds. */
export function recordMs(h: Histogram, ms: number): void {
  h.recordValue(Math.min(HIGHEST_US, Math.max(1, Math.round(ms * 1000))));
}

/**
 * `handshakeQueue`: how long a connection waited for a handshake slot (client-side, not the
 * target's). `ready`: from the socket to the server's hello, when the connection may act (with
 * auth, its token checked): what a connect costs an application, compared with and without auth.
 */
export const HISTOGRAMS = ['connect', 'tcp', 'tls', 'upgrade', 'ready', 'rtt', 'rttUncorrected', 'push', 'handshakeQueue'] as const;
export type HistogramName = (typeof HISTOGRAMS)[number];

export const COUNTERS = [
  'opened',
  'failed',
  'unfinished',
  'reconnects',
  'tlsResumed',
  'sent',
  'received',
  'bytesSent',
  'bytesReceived',
  'published',
  'notifications',
  'serverErrors',
  'lost',
  // Delivery through a broker (notifications with offsets): see virtual-user.ts.
  'duplicated',
  'reordered',
  'crossReplica',
  'recovered',
  'unrecoverable',
  'publishRetries',
  // Delta subscriptions (profile `delta`): data that came in full, as deltas, and the bytes of both.
  'deltaFull',
  'deltaApplied',
  'deltaWireBytes',
  'deltaDataBytes',
  'deltaVerified',
  // With auth (a token per virtual user): see virtual-user.ts.
  'tokens',
  'refreshed',
  'denied',
  'expiredCloses',
  'revokedCloses',
] as const;
export type CounterName = (typeof COUNTERS)[number];

/** All of a process's measurements except its histograms: what a tick carries (histograms travel once, at the end). */
export interface SerializedCounts {
  counters: Record<CounterName, number>;
  open: number;
  peak: number;
  errors: Record<string, number>;
  /** close code → [expected, unexpected, caused by an injected fault] */
  closes: Record<string, CloseCounts>;
  /** fault id → closes attributed to it */
  faultCloses: Record<string, number>;
  /** fault id → errors attributed to it */
  faultErrors: Record<string, number>;
  /** fault id → [connections it cut that opened again, when the last of them did (epoch ms)] */
  faultReconnects: Record<string, [number, number]>;
  perReplica: Record<string, number>;
  /** Connections open now, by the replica each landed on. */
  openPerReplica: Record<string, number>;
}

/** Everything one process measured: what it hands over at the end, mergeable with other processes'. */
export interface SerializedStats extends SerializedCounts {
  histograms: Record<HistogramName, string>;
}

/** One interval's latencies, for per-second percentiles: live in the process that recorded them. */
export interface IntervalHistograms {
  rtt: Histogram;
  push: Histogram;
}

/** An interval's latencies as they cross to another process (HDR, compressed base64). */
export interface EncodedInterval {
  rtt: string;
  push: string;
}

export function encodeInterval(i: IntervalHistograms): EncodedInterval {
  return { rtt: hdr.encodeIntoCompressedBase64(i.rtt), push: hdr.encodeIntoCompressedBase64(i.push) };
}

export function decodeInterval(e: EncodedInterval): IntervalHistograms {
  return { rtt: decodeHistogram(e.rtt), push: decodeHistogram(e.push) };
}

/** A histogram another process encoded: 32-bit buckets, as newHistogram() builds them, without WebAssembly. */
function decodeHistogram(text: string): Histogram {
  return hdr.decodeFromCompressedBase64(text, 32, false);
}

/** Adds `by` to a key's count. */
function count<K>(map: Map<K, number>, key: K, by = 1): void {
  map.set(key, (map.get(key) ?? 0) + by);
}

/** Adds another process's counts, key by key. */
function countAll(map: Map<string, number>, other: Record<string, number>): void {
  for (const [k, v] of Object.entries(other)) count(map, k, v);
}

/** [expected, unexpected, caused by an injected fault] */
export type CloseCounts = [number, number, number];
export type CloseKind = 'expected' | 'unexpected' | { fault: string };

export class Stats {
  readonly histograms = Object.fromEntries(HISTOGRAMS.map((n) => [n, newHistogram()])) as Record<HistogramName, Histogram>;
  readonly counters = Object.fromEntries(COUNTERS.map((n) => [n, 0])) as Record<CounterName, number>;
  open = 0;
  peak = 0;
  readonly errors = new Map<string, number>();
  readonly closes = new Map<number, CloseCounts>();
  readonly faultCloses = new Map<string, number>();
  readonly faultErrors = new Map<string, number>();
  readonly faultReconnects = new Map<string, [number, number]>();
  readonly perReplica = new Map<string, number>();
  readonly openPerReplica = new Map<string, number>();
  /** RTTs and push latencies since the last takeInterval(), for per-second percentiles. Not serialized. */
  private interval: IntervalHistograms = { rtt: newHistogram(), push: newHistogram() };

  /** Records a round trip, corrected (from when it was due) and as sent. */
  rtt(correctedMs: number, asSentMs?: number): void {
    recordMs(this.histograms.rtt, correctedMs);
    recordMs(this.interval.rtt, correctedMs);
    if (asSentMs !== undefined) recordMs(this.histograms.rttUncorrected, asSentMs);
  }

  /** Records a notification's publish → delivery time. */
  push(ms: number): void {
    recordMs(this.histograms.push, ms);
    recordMs(this.interval.push, ms);
  }

  /** The RTTs and push latencies recorded since the last call, handed over: a new interval starts. */
  takeInterval(): IntervalHistograms {
    const taken = this.interval;
    this.interval = { rtt: newHistogram(), push: newHistogram() };
    return taken;
  }

  opened(): void {
    this.counters.opened++;
    this.open++;
    if (this.open > this.peak) this.peak = this.open;
  }

  closed(code: number, kind: CloseKind): void {
    this.open--;
    const entry = this.closes.get(code) ?? [0, 0, 0];
    entry[kind === 'expected' ? 0 : kind === 'unexpected' ? 1 : 2]++;
    this.closes.set(code, entry);
    if (typeof kind === 'object') count(this.faultCloses, kind.fault);
  }

  error(kind: string): void {
    count(this.errors, kind);
  }

  /** An error an injected fault caused (the broker down while it restarts): counted with the fault, not as an error. */
  faultError(fault: string): void {
    count(this.faultErrors, fault);
  }

  /** Connections an injected fault cut are open again (`count` of them, the last at `epochMs`). */
  faultReconnected(fault: string, epochMs: number, count = 1): void {
    const [n, last] = this.faultReconnects.get(fault) ?? [0, 0];
    this.faultReconnects.set(fault, [n + count, Math.max(last, epochMs)]);
  }

  landed(replica: string): void {
    count(this.perReplica, replica);
    count(this.openPerReplica, replica);
  }

  /** A connection that had landed on `replica` closed. */
  left(replica: string): void {
    this.openPerReplica.set(replica, (this.openPerReplica.get(replica) ?? 1) - 1);
  }

  /** Everything, histograms encoded: once per process, at the end (encoding the nine costs about 1.3 ms). */
  serialize(): SerializedStats {
    const histograms = Object.fromEntries(HISTOGRAMS.map((n) => [n, hdr.encodeIntoCompressedBase64(this.histograms[n])]));
    return { ...this.counts(), histograms: histograms as Record<HistogramName, string> };
  }

  /** The counts so far, without the histograms: what every tick carries. */
  counts(): SerializedCounts {
    return {
      counters: { ...this.counters },
      open: this.open,
      peak: this.peak,
      errors: Object.fromEntries(this.errors),
      closes: Object.fromEntries([...this.closes].map(([k, v]) => [String(k), [...v] as CloseCounts])),
      faultCloses: Object.fromEntries(this.faultCloses),
      faultErrors: Object.fromEntries(this.faultErrors),
      faultReconnects: Object.fromEntries(this.faultReconnects),
      perReplica: Object.fromEntries(this.perReplica),
      openPerReplica: Object.fromEntries(this.openPerReplica),
    };
  }

  /**
   * Adds another process's measurements. Peaks add up too: workers ramp together, so their
   * peaks coincide to within a tick; the coordinator also tracks the summed open count per tick.
   */
  add(other: SerializedStats): void {
    for (const n of HISTOGRAMS) this.histograms[n].add(decodeHistogram(other.histograms[n]));
    for (const n of COUNTERS) this.counters[n] += other.counters[n];
    this.open += other.open;
    this.peak += other.peak;
    countAll(this.errors, other.errors);
    for (const [k, [e, u, f]] of Object.entries(other.closes)) {
      const entry = this.closes.get(Number(k)) ?? [0, 0, 0];
      this.closes.set(Number(k), [entry[0] + e, entry[1] + u, entry[2] + f]);
    }
    countAll(this.faultCloses, other.faultCloses);
    countAll(this.faultErrors, other.faultErrors);
    for (const [fault, [n, last]] of Object.entries(other.faultReconnects)) this.faultReconnected(fault, last, n);
    countAll(this.perReplica, other.perReplica);
    countAll(this.openPerReplica, other.openPerReplica);
  }

  static merge(parts: SerializedStats[]): Stats {
    const total = new Stats();
    for (const p of parts) total.add(p);
    return total;
  }
}

/** A histogram value (µs) in milliseconds, 3 decimals: microsecond resolution. */
export function usToMs(us: number): number {
  return Math.round(us) / 1000;
}

/** Percentiles in milliseconds (3 decimals = microsecond resolution). */
export function summarize(h: Histogram, percentiles: Record<string, number>): Record<string, number> & { max: number; count: number } {
  const out: Record<string, number> = {};
  for (const [name, p] of Object.entries(percentiles)) out[name] = h.totalCount ? usToMs(h.getValueAtPercentile(p)) : 0;
  return Object.assign(out, { max: h.totalCount ? usToMs(h.maxValue) : 0, count: h.totalCount });
}
