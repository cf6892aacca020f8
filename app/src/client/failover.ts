import type { FaultMark } from './faults';
import type { FailoverReport, TimelinePoint } from './report-model';

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
    storm: timeline
      .filter((p) => p.t >= mark.atSeconds - 1 && p.t <= end)
      .map((p) => ({ t: p.t, opensPerSecond: p.opensPerSecond, open: p.open })),
  };
}
