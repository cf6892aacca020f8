import type { LoadProfile } from '../shared/profile';
import type { FaultMark } from './faults';

/*
 * The load report's model: the types of what a run measured and how it was judged. Built by
 * report.ts, printed by summary.ts and html.ts.
 */

/** Percentiles of one latency, in ms, and how many samples. */
export type Latency = { p50: number; p90: number; p99: number; p999: number; max: number; count: number };

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
  messages: {
    sent: number;
    received: number;
    bytesSent: number;
    bytesReceived: number;
    published: number;
    notifications: number;
    lost: number;
    serverErrors: number;
  };
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
  /**
   * With auth (profile `tokens`): tokens fetched from the provider, refreshes the server took,
   * connections refused for their token (4500, 4502, 4001), closed for a token that expired unrefreshed
   * (4005), and closed by a revocation (4501). Absent without tokens.
   */
  auth?: { tokens: number; refreshed: number; denied: number; expiredCloses: number; revokedCloses: number };
  /**
   * With profile `delta`: notifications whose data came in full and as fossil deltas, the bytes
   * of data that came on the wire, the bytes of data they rebuilt, and how many rebuilt data were
   * compared with the publication as sent and equal (real payloads; a difference is the error
   * `delta_mismatch`). Absent without.
   */
  deltas?: { full: number; applied: number; wireBytes: number; dataBytes: number; verified: number };
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
    /** From the socket to the hello: the connection may act (with auth, once its token was checked). */
    ready: Latency;
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

/**
 * What a fault that cut every connection (a proxy of the HA pair) cost the clients: how long the
 * virtual address was silent, who was dropped, how long until all of them were back, and the
 * reconnect storm's shape.
 */
export interface FailoverReport {
  fault: string;
  /** The proxy that held the virtual address, and the one that took it. */
  from: string;
  to?: string;
  /** From the fault to the backup answering a TLS handshake on the virtual address; absent: it never did. */
  seconds?: number;
  /** Connections the fault cut. */
  dropped: number;
  /** Handshakes refused while the address moved (counted with the fault, not as failures). */
  refused: number;
  /** Of the dropped connections, those open again. */
  reconnected: number;
  /** From the fault until the last dropped connection was open again; absent unless all were. */
  allReconnectedSeconds?: number;
  /** Handshakes per second (reconnects included) from the second before the fault until all were back. */
  storm: { t: number; opensPerSecond: number; open: number }[];
}
