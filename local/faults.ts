import { parseDuration } from '../app/src/shared/duration';
import type { FaultEvent } from '../app/src/client/faults';
import type { LocalTopology } from './topology';

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
 */
export const FAULT_KINDS = ['reload-proxy', 'kill-replica', 'restart-broker'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultSpec {
  id: string;
  kind: FaultKind;
  /** The replica index, for kill-replica. */
  replica?: number;
  atMs: number;
}

/** Parses one --fault value; throws a message saying what is wrong. */
export function parseFault(text: string): FaultSpec {
  const match = /^([a-z-]+)(?::(\d+))?@(.+)$/.exec(text.trim());
  if (!match) throw new Error(`"${text}" is not KIND[:N]@TIME (e.g. reload-proxy@20s, kill-replica:1@40s)`);
  const [, kind, arg, at] = match;
  if (!(FAULT_KINDS as readonly string[]).includes(kind)) throw new Error(`"${kind}" is not a fault kind (${FAULT_KINDS.join(', ')})`);
  if (arg !== undefined && kind !== 'kill-replica') throw new Error(`${kind} takes no :N`);
  const atMs = parseDuration(at);
  return { id: text.trim(), kind: kind as FaultKind, replica: kind === 'kill-replica' ? Number(arg ?? 0) : undefined, atMs };
}

/** Checks the faults against the run: replicas that exist, times inside the load, a broker to restart. */
export function checkFaults(faults: FaultSpec[], run: { replicas: number; durationMs: number; broker?: boolean }): string | undefined {
  for (const f of faults) {
    if (f.kind === 'restart-broker' && !run.broker) return `${f.id}: the run has no broker (it is on by default: drop --no-broker)`;
    if (f.replica !== undefined && f.replica >= run.replicas) return `${f.id}: there is no replica ${f.replica} (replicas 0..${run.replicas - 1})`;
    if (f.atMs >= run.durationMs) return `${f.id}: ${f.atMs} ms is not inside the run (${run.durationMs} ms)`;
  }
  const killed = faults.filter((f) => f.kind === 'kill-replica').map((f) => f.replica);
  if (new Set(killed).size !== killed.length) return 'each replica can be killed once';
  if (killed.length >= run.replicas) return 'killing every replica leaves nothing to serve';
  return undefined;
}

/** What the load client is told of a fault, before it is executed. */
export function faultEvent(local: LocalTopology, fault: FaultSpec): FaultEvent {
  return fault.kind === 'kill-replica' ? { id: fault.id, kind: fault.kind, replica: local.replicas[fault.replica!].id } : { id: fault.id, kind: fault.kind };
}

/**
 * Runs each fault at its time: first the load client is told (and has answered), then the fault
 * acts, so the closes it causes are attributed to it. `failed()` says whether one could not act.
 */
export function scheduleFaults(local: LocalTopology, faults: FaultSpec[], tell: (event: FaultEvent) => Promise<void>, log: (line: string) => void): { cancel(): void; failed(): boolean } {
  let failed = false;
  const timers = faults.map((fault) =>
    setTimeout(() => {
      tell(faultEvent(local, fault))
        .then(() => executeFault(local, fault, log))
        .catch((error: Error) => {
          failed = true;
          log(`fault ${fault.id} failed: ${error.message}`);
        });
    }, fault.atMs),
  );
  return { cancel: () => timers.forEach(clearTimeout), failed: () => failed };
}

/** Executes one fault for real. */
export async function executeFault(local: LocalTopology, fault: FaultSpec, log: (line: string) => void): Promise<void> {
  switch (fault.kind) {
    case 'reload-proxy': {
      const r = await local.reloadProxy();
      const scheduled = Object.values(r.announced).reduce((a, x) => a + x.scheduled, 0);
      log(`fault ${fault.id}: nginx reloaded in ${r.seconds.toFixed(2)} s, new workers ${r.workers.join(',')}; ${scheduled} connection(s) of retired workers get 1001 before nginx's deadline`);
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
  }
}
