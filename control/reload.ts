import { reloadShedDelayMs, type ProxyConfig } from '../app/src/topology';
import { type AnnouncementReply, type AnnouncementTiming, CONTROL_PATHS, type ProxyWorkersAnnouncement } from '../app/src/shared/control';
import type { ProxyAccess, ReplicaAccess } from './access';

/**
 * A reload that cuts no WebSocket. `nginx -s reload` starts new workers; the old ones keep the
 * connections they carry until worker_shutdown_timeout, then cut them (1006). So after the
 * reload we find the new workers and tell every replica which they are: each replica closes
 * the connections that came through the retired workers with 1001, spread over a window that
 * ends before nginx's deadline (docs/architecture.md, "Reloads").
 */

/**
 * A shell function printing the children of pid $1: the kernel's list where it keeps one
 * (/proc/PID/task/PID/children: a read, whatever runs beside), else a scan of /proc (no ps in
 * slim images). The scan forks twice per process, about 0.7 s for 70 processes here, so a
 * reload that polled it took 2.5 s to see its new workers. The follower uses it too.
 */
export const CHILDREN_FUNCTION = `children() {
  [ -d "/proc/$1" ] || return 0
  cat "/proc/$1/task/$1/children" 2>/dev/null && return 0
  for d in /proc/[0-9]*; do
    [ "$(sed -n 's/^PPid:[[:space:]]*//p' "$d/status" 2>/dev/null)" = "$1" ] && echo "\${d#/proc/}"
  done
}`;

/** What TITLE_FUNCTION prints for a child whose title cannot be read. */
export const UNREADABLE_TITLE = 'unreadable';

/**
 * A shell function printing pid $1's title (its cmdline), or UNREADABLE_TITLE when the read fails
 * (the child went between the listing and the read). Whoever lists workers counts such a child as
 * current: dropped, an old worker would be missing from the set before a reload and could pass
 * for a new one after it. The follower uses it too.
 */
export const TITLE_FUNCTION = `title() { { tr '\\0' ' ' < "/proc/$1/cmdline"; } 2>/dev/null || echo ${UNREADABLE_TITLE}; }`;

/** One line per child of nginx's master `master`: `pid ppid title`. */
const listChildren = (master: number) =>
  `${CHILDREN_FUNCTION}\n${TITLE_FUNCTION}\nfor p in $(children ${master}); do printf '%s %s %s\\n' "$p" ${master} "$(title "$p")"; done`;

export interface NginxWorkers {
  master: number;
  /** Workers running the current configuration. */
  current: number[];
  /** Workers of earlier configurations, still holding connections ("is shutting down"). */
  retiring: number[];
}

/** Sorts the master's children into current and retiring workers. */
export function parseWorkers(listing: string, master: number): NginxWorkers {
  const current: number[] = [];
  const retiring: number[] = [];
  for (const line of listing.split('\n')) {
    const match = /^(\d+) (\d+) (.*)$/.exec(line.trim());
    if (!match || Number(match[2]) !== master) continue;
    const title = match[3];
    // A child whose title could not be read counts as current (TITLE_FUNCTION says why).
    if (!/worker process/.test(title) && title !== UNREADABLE_TITLE) continue;
    (/is shutting down/.test(title) ? retiring : current).push(Number(match[1]));
  }
  return { master, current: current.sort((a, b) => a - b), retiring: retiring.sort((a, b) => a - b) };
}

export async function nginxWorkers(proxy: ProxyAccess): Promise<NginxWorkers> {
  const master = Number((await proxy.sh(`cat '${proxy.pidFile}'`)).trim());
  if (!Number.isInteger(master) || master <= 0) throw new Error(`${proxy.name}: no nginx master pid in ${proxy.pidFile}`);
  return parseWorkers(await proxy.sh(listChildren(master)), master);
}

/** The timing of the announcement the replicas get after a reload (one home: proxy.reload). */
export function announcementTiming(proxy: Pick<ProxyConfig, 'shutdownTimeoutMs' | 'reload'>): AnnouncementTiming {
  return {
    shedAfterMs: reloadShedDelayMs(proxy),
    windowMs: proxy.reload.shedWindowMs,
    maxStaleGenerations: proxy.reload.maxStaleGenerations,
  };
}

/** How long a reload may take to start its new workers before it is reported as failed (the swarm follower waits as long). */
export const NEW_WORKERS_TIMEOUT_MS = 15_000;

export interface ReloadResult {
  /** The workers running the new configuration. */
  workers: number[];
  /** Workers still shutting down after the reload (this one's and earlier ones'). */
  retiring: number[];
  /** Per replica: connections scheduled for a 1001, and retired workers still holding some. */
  announced: Record<string, AnnouncementReply>;
  seconds: number;
}

/**
 * Tells every replica a proxy's current workers (none: the proxy is stopping): each closes the
 * connections through the others with 1001 over the window. Each replica's answer, and the
 * replicas that did not take it (`name: why`), for the caller to say what that costs.
 */
export async function announceWorkers(
  replicas: readonly ReplicaAccess[],
  announcement: ProxyWorkersAnnouncement,
): Promise<{ announced: Record<string, AnnouncementReply>; failed: string[] }> {
  const replies = await Promise.allSettled(
    replicas.map((r) => r.request<AnnouncementReply>('POST', CONTROL_PATHS.proxyWorkers, announcement)),
  );
  const announced: Record<string, AnnouncementReply> = {};
  const failed: string[] = [];
  replies.forEach((r, i) => {
    if (r.status === 'fulfilled') announced[replicas[i].name] = r.value;
    else failed.push(`${replicas[i].name}: ${(r.reason as Error).message}`);
  });
  return { announced, failed };
}

/**
 * Checks the config, reloads nginx, waits for its new workers, then announces them to every
 * replica. Rejects naming the step and the replica that failed; connections are then left to
 * nginx's deadline, as they would be without this.
 */
export async function reloadAndAnnounce(
  proxy: ProxyAccess,
  replicas: readonly ReplicaAccess[],
  plan: AnnouncementTiming,
  options: { workerProcesses: number; timeoutMs?: number },
): Promise<ReloadResult> {
  const started = Date.now();
  await proxy.sh(proxy.checkCommand).catch((error: Error) => {
    throw new Error(`${proxy.name}: the new configuration is invalid, nginx was not reloaded: ${error.message}`);
  });
  const before = await nginxWorkers(proxy);
  await proxy.sh(`kill -HUP "$(cat '${proxy.pidFile}')"`);
  // nginx's deadline for the old workers runs from here, not from the announcement.
  const hupAt = Date.now();
  const deadline = Date.now() + (options.timeoutMs ?? NEW_WORKERS_TIMEOUT_MS);
  let now = before;
  // The master starts the new workers after it has read the config; wait for all of them, and
  // for the old ones to leave the current set (more than workerProcesses is a mix of both).
  while (!(now.current.length === options.workerProcesses && now.current.every((pid) => !before.current.includes(pid)))) {
    if (Date.now() > deadline) {
      throw new Error(
        `${proxy.name}: nginx started no new workers within ${options.timeoutMs ?? NEW_WORKERS_TIMEOUT_MS} ms of the reload (workers before ${before.current}, now ${now.current}); see its error log`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
    now = await nginxWorkers(proxy);
  }
  const hostname = (await proxy.sh('cat /proc/sys/kernel/hostname')).trim();
  if (!hostname) throw new Error(`${proxy.name}: could not read the host name nginx stamps into its header`);
  const announcement: ProxyWorkersAnnouncement = {
    proxy: hostname,
    workers: now.current,
    retired: now.retiring,
    ...plan,
    shedAfterMs: Math.max(0, plan.shedAfterMs - (Date.now() - hupAt)),
  };
  const { announced, failed } = await announceWorkers(replicas, announcement);
  if (failed.length)
    throw new Error(
      `${proxy.name} reloaded, but ${failed.length} replica(s) did not take the announcement (their retired connections will be cut at nginx's deadline):\n  ${failed.join('\n  ')}`,
    );
  return { workers: now.current, retiring: now.retiring, announced, seconds: (Date.now() - started) / 1000 };
}
