import { existsSync, writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';

/** The load client's scheduling priority (a nice value: lower goes first; the system's stay at 0). */
export const GENERATOR_NICE = -10;

/**
 * Lets the load client take the CPU before the system it measures, as it would on a machine of its
 * own: its timings then stay the system's. Every process the local runner starts leads a session
 * of its own, and with Linux's autogroup scheduling busy sessions share the CPU equally whatever a
 * process's nice value. In a failover's reconnect storm the client got one share among five or
 * six (nginx, three replicas) and lagged: a nice value alone changed nothing. So both the
 * process and its session's group are raised; workers it forks later inherit both.
 *
 * Needs root (CAP_SYS_NICE). Returns why it could not, or undefined.
 */
export function prioritizeGenerator(pid: number): string | undefined {
  try {
    setPriority(pid, GENERATOR_NICE);
    const group = `/proc/${pid}/autogroup`;
    if (existsSync(group)) writeFileSync(group, String(GENERATOR_NICE));
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}
