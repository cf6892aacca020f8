import type { ChildProcess } from 'node:child_process';

/**
 * Faults injected while the load runs (the local topology's `--fault`), as the client is told
 * of them: marked on the timeline, and the closes they cause are theirs, not unexpected ones.
 */
export interface FaultEvent {
  /** Unique within a run, e.g. "kill-replica@40s". */
  id: string;
  kind: string;
  /** The replica whose connections the fault cut; their non-reconnect closes are attributed to it. */
  replica?: string;
  /**
   * The fault cuts every connection (a proxy of the HA pair): closes on any replica are its own,
   * and so are handshakes refused until it is over (the address moving to the backup).
   */
  cutsAll?: boolean;
  /** A second notice with the same id: the fault's effect is over, with what it measured. */
  over?: boolean;
  /** The failover a proxy fault caused, measured by whoever injected it. */
  failover?: FailoverMeasure;
}

/** How the HA pair's virtual address moved, as the injector saw it. */
export interface FailoverMeasure {
  /** From the fault to the first TLS handshake answered on the virtual address again; absent when none came. */
  seconds?: number;
  /** The proxy that held the address, and the one holding it after. */
  from: string;
  to?: string;
}

/**
 * Between a process and the one it tells of a fault (the runner and the client, the client and
 * its workers), over IPC: the notice, then the answer.
 */
export type FaultNotice = { type: 'fault'; event: FaultEvent } | { type: 'fault-ack'; id: string };

/** How long a notice waits for its answer: a process that is finishing may never give one. */
const FAULT_ACK_TIMEOUT_MS = 5_000;

/** Tells a child process of a fault; resolves on its answer, or after the timeout. */
export function tellFault(child: ChildProcess, event: FaultEvent): Promise<void> {
  return new Promise((resolve) => {
    if (!child.connected) return resolve();
    const done = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      resolve();
    };
    const onMessage = (m: FaultNotice) => m?.type === 'fault-ack' && m.id === event.id && done();
    const timer = setTimeout(done, FAULT_ACK_TIMEOUT_MS);
    timer.unref();
    child.on('message', onMessage);
    child.send({ type: 'fault', event } satisfies FaultNotice);
  });
}

export interface FaultMark extends FaultEvent {
  /** Seconds since the load started. */
  atSeconds: number;
  /** When it happened (epoch ms): the workers' reconnect times are compared with it. */
  atEpochMs: number;
  /** Seconds since the load started when its effect was over (a proxy fault's failover answered). */
  overAtSeconds?: number;
}

/** How long after a fault the closes on its replica are still its own (they come at once in practice). */
const FAULT_ATTRIBUTION_MS = 30_000;
/**
 * After a proxy fault is over (the address answers again), handshakes already under way may still
 * meet the old holder for a moment (ARP caches, a SYN sent just before): this long, they are its.
 */
const FAULT_HANDSHAKE_GRACE_MS = 1_000;

/** The faults one process has been told of, with when (performance.now()). */
export class FaultLog {
  private readonly seen: { event: FaultEvent; at: number; overAt?: number }[] = [];

  /** A fault now, or (`over`) the end of one already logged. */
  add(event: FaultEvent, at = performance.now()): void {
    const known = event.over ? this.seen.find((s) => s.event.id === event.id) : undefined;
    if (known) known.overAt = at;
    else if (!event.over) this.seen.push({ event, at });
  }

  /** The newest fault that hit this replica (or every connection) within the attribution window. */
  on(replica: string, now = performance.now()): string | undefined {
    return this.newest((e) => e.replica === replica || e.cutsAll === true, now);
  }

  /**
   * The fault that refuses handshakes now: one cutting every connection, not over yet (or over
   * within the grace), and within the attribution window.
   */
  refusing(now = performance.now()): string | undefined {
    return this.newest((e, overAt) => e.cutsAll === true && (overAt === undefined || now - overAt <= FAULT_HANDSHAKE_GRACE_MS), now);
  }

  /** The newest fault of this kind (one that hits every replica, such as restart-broker) within the window. */
  ofKind(kind: string, now = performance.now()): string | undefined {
    return this.newest((e) => e.kind === kind, now);
  }

  /** The newest fault within the attribution window that matches (given when its effect was over, if it was). */
  private newest(match: (e: FaultEvent, overAt?: number) => boolean, now: number): string | undefined {
    for (let i = this.seen.length - 1; i >= 0; i--) {
      const { event, at, overAt } = this.seen[i];
      if (match(event, overAt) && now - at <= FAULT_ATTRIBUTION_MS) return event.id;
    }
    return undefined;
  }
}
