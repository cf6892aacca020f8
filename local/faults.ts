import { parseDuration } from '../app/src/shared/duration';
import type { FailoverMeasure, FaultEvent } from '../app/src/client/faults';
import type { ProxyWorkersAnnouncement } from '../app/src/shared/control';
import { announceWorkers } from '../control/reload';
import { timeUntilAnswering } from './ha';
import { PROXY_PORTS } from '../nginx/render';
import { readFileSync } from 'node:fs';
import { running, stop, stopComponent } from './processes';
import { virtualUserSubject } from '../app/src/client/tokens';
import { peakConnections } from '../app/src/shared/profile';
import { REVOKE_API_PATH } from '../app/src/shared/protocol';
import type { LocalRun } from './run';

/**
 * Faults on demand in the local topology: `--fault KIND[:ARG]@TIME`, each executed for real at
 * TIME after the load starts, and reported to the load client, which marks it on the timeline
 * and attributes the closes it causes.
 * - `reload-proxy`: `nginx -s reload` of the running master, announced to the replicas like
 *   every reload; it must cut nothing, so its closes are never excused.
 * - `kill-replica[:N]`: SIGKILL of replica N (default 0); its clients' 1006s are the fault's.
 * - `restart-broker`: nats-server stopped (SIGTERM) and started again a second later on the
 *   same store; WebSockets stay open, publications meanwhile are refused (broker_unavailable),
 *   and the replicas resume after the last notification they delivered.
 * - `kill-proxy` (--ha): SIGKILL of the nginx (master and workers) holding the virtual address;
 *   its keepalived sees the check fail and gives the address up, the backup takes it. Every
 *   client is cut and reconnects; the time until the address answers again is measured.
 * - `stop-proxy` (--ha): the same proxy stopped gracefully: its nginx stops listening (SIGQUIT;
 *   reconnects are refused and retried), the replicas ask its clients to move (1001) within
 *   proxy.ha.stopDrainMs, then its keepalived leaves the group (priority 0: the backup takes the
 *   address at once). Moving the address first would leave those connections half-open on the
 *   old node (docs/architecture.md).
 * - `rotate-keys` (--auth): the provider's signing key rotates (the next one was published
 *   ahead); new tokens use it, tokens signed before stay valid until they expire: nothing closes.
 * - `revoke:N` (--auth): N virtual users' subjects are revoked through the admin API; exactly
 *   their connections close (4501), and they come back with fresh tokens.
 */
export const FAULT_KINDS = ['reload-proxy', 'kill-replica', 'restart-broker', 'kill-proxy', 'stop-proxy', 'rotate-keys', 'revoke'] as const;
const AUTH_FAULTS: readonly FaultKind[] = ['rotate-keys', 'revoke'];
const PROXY_FAULTS: readonly FaultKind[] = ['kill-proxy', 'stop-proxy'];
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultSpec {
  id: string;
  kind: FaultKind;
  /** The replica index, for kill-replica. */
  replica?: number;
  /** How many virtual users, for revoke. */
  count?: number;
  atMs: number;
}

/** Parses one --fault value; throws a message saying what is wrong. */
export function parseFault(text: string): FaultSpec {
  const match = /^([a-z-]+)(?::(\d+))?@(.+)$/.exec(text.trim());
  if (!match) throw new Error(`"${text}" is not KIND[:N]@TIME (e.g. reload-proxy@20s, kill-replica:1@40s)`);
  const [, kind, arg, at] = match;
  if (!(FAULT_KINDS as readonly string[]).includes(kind)) throw new Error(`"${kind}" is not a fault kind (${FAULT_KINDS.join(', ')})`);
  if (arg !== undefined && kind !== 'kill-replica' && kind !== 'revoke') throw new Error(`${kind} takes no :N`);
  const atMs = parseDuration(at);
  const fault: FaultSpec = { id: text.trim(), kind: kind as FaultKind, atMs };
  if (kind === 'kill-replica') fault.replica = Number(arg ?? 0);
  if (kind === 'revoke') fault.count = Number(arg ?? 1);
  return fault;
}

/** Checks the faults against the run: replicas that exist, times inside the load, a broker to restart. */
export function checkFaults(
  faults: FaultSpec[],
  run: { replicas: number; durationMs: number; broker?: boolean; proxies?: number; auth?: boolean; connections?: number },
): string | undefined {
  for (const f of faults) {
    if (AUTH_FAULTS.includes(f.kind) && !run.auth) return `${f.id}: needs tokens (--auth)`;
    if (f.count !== undefined && (f.count < 1 || f.count > (run.connections ?? 0)))
      return `${f.id}: revoke between 1 and the run's ${run.connections} connections`;
    if (PROXY_FAULTS.includes(f.kind) && !run.proxies)
      return `${f.id}: needs the HA pair (--ha): with one proxy it takes the whole service down`;
    if (f.kind === 'restart-broker' && !run.broker) return `${f.id}: the run has no broker (it is on by default: drop --no-broker)`;
    if (f.replica !== undefined && f.replica >= run.replicas)
      return `${f.id}: there is no replica ${f.replica} (replicas 0..${run.replicas - 1})`;
    if (f.atMs >= run.durationMs) return `${f.id}: ${f.atMs} ms is not inside the run (${run.durationMs} ms)`;
  }
  const killed = faults.filter((f) => f.kind === 'kill-replica').map((f) => f.replica);
  if (new Set(killed).size !== killed.length) return 'each replica can be killed once';
  if (killed.length >= run.replicas) return 'killing every replica leaves nothing to serve';
  const proxiesDown = faults.filter((f) => PROXY_FAULTS.includes(f.kind)).length;
  if (run.proxies && proxiesDown >= run.proxies)
    return `taking down ${proxiesDown} of ${run.proxies} proxies leaves none to hold the virtual address`;
  return undefined;
}

/** What the load client is told of a fault, before it is executed. */
export function faultEvent(local: LocalRun, fault: FaultSpec): FaultEvent {
  if (fault.kind === 'kill-replica') return { id: fault.id, kind: fault.kind, replica: local.replicas[fault.replica!].id };
  return PROXY_FAULTS.includes(fault.kind) ? { id: fault.id, kind: fault.kind, cutsAll: true } : { id: fault.id, kind: fault.kind };
}

/**
 * Runs each fault at its time: first the load client is told (and has answered), then the fault
 * acts, so the closes it causes are attributed to it. `failed()` says whether one could not act.
 */
export function scheduleFaults(
  local: LocalRun,
  faults: FaultSpec[],
  tell: (event: FaultEvent) => Promise<void>,
  log: (line: string) => void,
): { cancel(): void; failed(): boolean } {
  let failed = false;
  const timers = faults.map((fault) =>
    setTimeout(() => {
      const event = faultEvent(local, fault);
      tell(event)
        .then(() => executeFault(local, fault, log))
        // What it measured, and that it is over: refused handshakes from here on are failures again.
        .then((failover) => failover && tell({ id: event.id, kind: event.kind, over: true, failover }))
        .catch((error: Error) => {
          failed = true;
          log(`fault ${fault.id} failed: ${error.message}`);
        });
    }, fault.atMs),
  );
  return { cancel: () => timers.forEach(clearTimeout), failed: () => failed };
}

/** Executes one fault for real; a proxy fault resolves with the failover it caused. */
export async function executeFault(local: LocalRun, fault: FaultSpec, log: (line: string) => void): Promise<FailoverMeasure | undefined> {
  switch (fault.kind) {
    case 'reload-proxy': {
      const r = await local.reloadProxy();
      const scheduled = Object.values(r.announced).reduce((a, x) => a + x.scheduled, 0);
      log(
        `fault ${fault.id}: nginx reloaded in ${r.seconds.toFixed(2)} s, new workers ${r.workers.join(',')}; ${scheduled} connection(s) of retired workers get 1001 before nginx's deadline`,
      );
      return;
    }
    case 'kill-replica':
      await local.stopReplica(fault.replica!, 'SIGKILL');
      log(`fault ${fault.id}: ${local.replicas[fault.replica!].id} killed (SIGKILL)`);
      return;
    case 'restart-broker': {
      const started = Date.now();
      await local.broker!.restart();
      log(`fault ${fault.id}: nats-server restarted (down ${((Date.now() - started) / 1000).toFixed(1)} s)`);
      return;
    }
    case 'kill-proxy':
    case 'stop-proxy':
      return takeDownProxy(local, fault, log);
    case 'rotate-keys': {
      const kid = await local.idp!.rotateKeys();
      log(`fault ${fault.id}: the provider signs with key ${kid} now; the previous key stays published`);
      return;
    }
    case 'revoke':
      await revokeUsers(local, fault.count!, log, fault.id);
      return;
  }
}

/** Revokes `count` virtual users spread over the run (their subjects), through a running replica's admin API. */
async function revokeUsers(local: LocalRun, count: number, log: (line: string) => void, id: string): Promise<void> {
  const connections = peakConnections(local.topology.load);
  const replica = local.replicas.find((r) => running(r.process));
  if (!replica) throw new Error('no replica is running to take the revocations');
  const key = readFileSync(local.topology.server.apiKeyFile!, 'utf8').trim();
  const subjects = Array.from({ length: count }, (_, i) => virtualUserSubject(Math.floor((i * connections) / count)));
  for (const sub of subjects) {
    const r = await fetch(`http://127.0.0.1:${replica.port}${REVOKE_API_PATH}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ sub }),
    });
    if (r.status !== 202) throw new Error(`revoking ${sub} answered ${r.status}: ${await r.text()}`);
  }
  log(
    `fault ${id}: revoked ${count} virtual user(s) (${subjects.slice(0, 3).join(', ')}${count > 3 ? ', ...' : ''}) through ${replica.id}`,
  );
}

/** kill-proxy and stop-proxy: the holder of the virtual address goes, and the failover is timed. */
async function takeDownProxy(local: LocalRun, fault: FaultSpec, log: (line: string) => void): Promise<FailoverMeasure> {
  const ha = local.ha;
  if (!ha) throw new Error('no HA pair in this run');
  const holder = ha.holder();
  if (!holder) throw new Error(`no proxy holds ${ha.virtualAddress}`);
  const since = Date.now();
  if (fault.kind === 'kill-proxy') {
    // The whole process group: nginx's workers outlive a killed master otherwise, still serving.
    process.kill(-holder.nginx.child.pid!, 'SIGKILL');
    await holder.nginx.exited;
  } else {
    const { proxy } = local.topology;
    // No new connections here; the ones here asked to move, before its check demotes it.
    void stop(holder.nginx, 'SIGQUIT', 10_000);
    const announcement: ProxyWorkersAnnouncement = {
      proxy: holder.name,
      workers: [],
      retired: [],
      shedAfterMs: 0,
      windowMs: proxy.ha.stopDrainMs,
      maxStaleGenerations: proxy.reload.maxStaleGenerations,
    };
    const { announced, failed } = await announceWorkers(local.replicaAccess(), announcement);
    if (failed.length)
      throw new Error(
        `${failed.length} replica(s) did not take the stop (their connections through ${holder.name} will be cut):\n  ${failed.join('\n  ')}`,
      );
    log(
      `fault ${fault.id}: ${holder.name} stopped listening; ${Object.values(announced).reduce((a, r) => a + r.scheduled, 0)} ` +
        `connection(s) through it asked to move (1001) within ${proxy.ha.stopDrainMs / 1000} s`,
    );
    // Then the address: keepalived leaves the group (priority 0), the backup takes it at once.
    await new Promise((r) => setTimeout(r, proxy.ha.stopDrainMs + 100));
    await stopComponent(holder.keepalived, holder.specs.vrrp);
    log(`fault ${fault.id}: ${holder.name} left the VRRP group`);
  }
  const seconds = await timeUntilAnswering(ha.virtualAddress, PROXY_PORTS.https, { since });
  const to = ha.holder();
  log(
    `fault ${fault.id}: ${holder.name} ${fault.kind === 'kill-proxy' ? 'killed (SIGKILL, nginx and its workers)' : 'stopped'}; ` +
      `${to ? `${to.name} holds ${ha.virtualAddress}` : 'no proxy holds the address'}, answering after ${seconds === undefined ? 'never' : `${seconds.toFixed(2)} s`}`,
  );
  return { from: holder.name, ...(to ? { to: to.name } : {}), ...(seconds !== undefined ? { seconds } : {}) };
}
