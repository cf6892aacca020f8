import type { FaultMark } from './faults';
import type { TimelinePoint } from './report';

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

/** The failover of one proxy fault, from the fault's mark, its counts and the timeline. */
export function failoverOf(
  mark: FaultMark,
  counts: { closes: number; errors: number; reconnected: number; lastReconnectEpochMs?: number },
  timeline: readonly TimelinePoint[],
): FailoverReport | undefined {
  if (!mark.cutsAll) return undefined;
  const all = counts.closes > 0 && counts.reconnected >= counts.closes && counts.lastReconnectEpochMs !== undefined;
  const allReconnectedSeconds = all ? Math.max(0, Math.round(counts.lastReconnectEpochMs! - mark.atEpochMs) / 1000) : undefined;
  const end = mark.atSeconds + (allReconnectedSeconds ?? 30) + 1;
  return {
    fault: mark.id,
    from: mark.failover?.from ?? '',
    ...(mark.failover?.to ? { to: mark.failover.to } : {}),
    ...(mark.failover?.seconds !== undefined ? { seconds: mark.failover.seconds } : {}),
    dropped: counts.closes,
    refused: counts.errors,
    reconnected: counts.reconnected,
    ...(allReconnectedSeconds !== undefined ? { allReconnectedSeconds } : {}),
    storm: timeline.filter((p) => p.t >= mark.atSeconds - 1 && p.t <= end).map((p) => ({ t: p.t, opensPerSecond: p.opensPerSecond, open: p.open })),
  };
}

/** One line for the summary. */
export function formatFailover(f: FailoverReport): string {
  const answered = f.seconds === undefined ? 'the virtual address never answered again' : `${f.to ?? 'the backup'} answering after ${f.seconds.toFixed(2)} s`;
  const back = f.allReconnectedSeconds === undefined ? `${f.reconnected} of ${f.dropped} back` : `all back after ${f.allReconnectedSeconds.toFixed(1)} s`;
  const peak = Math.max(0, ...f.storm.map((p) => p.opensPerSecond));
  return `failover     ${f.fault}: ${f.from} → ${answered}; ${f.dropped} dropped, ${f.refused} handshake(s) refused meanwhile, ${back}; storm peak ${peak} opens/s`;
}
