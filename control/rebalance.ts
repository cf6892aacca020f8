import type { RebalanceConfig } from '../app/src/topology';
import { CONTROL_PATHS, type ConnectionsReport, type ShedReply } from '../app/src/shared/control';
import type { ReplicaAccess } from './access';

/**
 * A gradual rebalance after the fleet grows. least_conn steers only new connections, so after
 * 3 → 5 the new replicas stay nearly empty. Each round asks the replicas above the mean to close
 * part of their surplus with 1001 over a window and, while the round lasts, to refuse handshakes
 * (503: nginx tries the next replica) once they are back at the mean, so the clients reconnect
 * to the emptier replicas. Rounds repeat until every replica is within the tolerance.
 */

/** Every replica within `tolerance` of the mean (and at least one connection apart at most). */
export function isEven(counts: Record<string, number>, tolerance: number): boolean {
  const values = Object.values(counts);
  if (values.length < 2) return true;
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const slack = Math.max(1, mean * tolerance);
  return values.every((v) => Math.abs(v - mean) <= slack);
}

export interface RoundPlan {
  /** Replica → connections to shed this round. */
  shed: Record<string, number>;
  /** The most a shedding replica should hold while the round lasts. */
  holdAtMost: number;
}

/** One round: each replica above the mean sheds its surplus, at most maxFraction of what it holds. */
export function planRound(counts: Record<string, number>, config: Pick<RebalanceConfig, 'maxFraction'>): RoundPlan {
  const values = Object.values(counts);
  const total = values.reduce((a, b) => a + b, 0);
  const holdAtMost = Math.ceil(total / Math.max(1, values.length));
  const shed: Record<string, number> = {};
  for (const [replica, n] of Object.entries(counts)) {
    const surplus = n - holdAtMost;
    if (surplus > 0) shed[replica] = Math.max(1, Math.min(surplus, Math.floor(n * config.maxFraction)));
  }
  return { shed, holdAtMost };
}

export interface RebalanceResult {
  before: Record<string, number>;
  after: Record<string, number>;
  rounds: { shed: Record<string, number>; counts: Record<string, number> }[];
  even: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function reportsOf(replicas: readonly ReplicaAccess[]): Promise<ConnectionsReport[]> {
  return Promise.all(replicas.map((r) => r.request<ConnectionsReport>('GET', CONTROL_PATHS.connections)));
}

/**
 * The counts once no replica holds a connection waiting for its 1001 (a reload's retired
 * workers', or a round's), then `settleMs` for the shed clients to come back. Counted earlier,
 * a replica still holds connections that are about to leave it: a scale-up's reload retires
 * every connection, so the first count would call the old replicas full and cap them while
 * least_conn is already spreading their clients, and nginx counts each capped 503 towards
 * max_fails (docs/architecture.md, "Rebalancing").
 */
async function settledCounts(
  replicas: readonly ReplicaAccess[],
  settleMs: number,
  quietWithinMs: number,
  log?: (line: string) => void,
): Promise<Record<string, number>> {
  const deadline = Date.now() + quietWithinMs;
  let said = false;
  for (;;) {
    const moving = (await reportsOf(replicas)).reduce((a, r) => a + r.shedding, 0);
    if (moving === 0 || Date.now() >= deadline) break;
    if (!said)
      log?.(
        `rebalance: waiting for the ${moving} connection(s) a reload or round is moving (at most ${Math.round(quietWithinMs / 1000)} s)`,
      );
    said = true;
    await sleep(250);
  }
  await sleep(settleMs);
  const reports = await reportsOf(replicas);
  return Object.fromEntries(reports.map((r, i) => [replicas[i].name, r.connections]));
}

export interface RebalanceOptions {
  /** How long shed clients take to come back (their reconnect backoff) before a count. @default 3000 */
  settleMs?: number;
  /** The longest to wait for the replicas' pending 1001s (a reload's wave) before a count. @default 60000 */
  quietWithinMs?: number;
  log?: (line: string) => void;
}

/** Runs rounds until the spread is even or maxRounds ran. */
export async function rebalance(
  replicas: readonly ReplicaAccess[],
  config: RebalanceConfig,
  options: RebalanceOptions = {},
): Promise<RebalanceResult> {
  const settleMs = options.settleMs ?? 3_000;
  const quietWithinMs = options.quietWithinMs ?? 60_000;
  const before = await settledCounts(replicas, settleMs, quietWithinMs, options.log);
  const rounds: RebalanceResult['rounds'] = [];
  let counts = before;
  while (!isEven(counts, config.tolerance) && rounds.length < config.maxRounds) {
    const plan = planRound(counts, config);
    await Promise.all(
      replicas
        .filter((r) => plan.shed[r.name])
        .map((r) =>
          r.request<ShedReply>('POST', CONTROL_PATHS.shed, {
            count: plan.shed[r.name],
            windowMs: config.windowMs,
            holdAtMost: plan.holdAtMost,
            capForMs: config.windowMs + settleMs,
          }),
        ),
    );
    await sleep(config.windowMs);
    counts = await settledCounts(replicas, settleMs, quietWithinMs, options.log);
    rounds.push({ shed: plan.shed, counts });
    options.log?.(`rebalance round ${rounds.length}: shed ${JSON.stringify(plan.shed)} → ${JSON.stringify(counts)}`);
  }
  return { before, after: counts, rounds, even: isEven(counts, config.tolerance) };
}
