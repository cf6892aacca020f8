import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';

/** The load client's scheduling priority (a nice value: lower goes first; the system's stay at 0). */
export const GENERATOR_NICE = -10;

/**
 * The nice value of the autogroup a process's session has, read from `/proc/PID/autogroup`
 * ("/autogroup-42 nice -10"). Undefined for a process still in the default group (sessions
 * started before any setsid, as under some init systems and CI runners): the kernel shows
 * nothing there and refuses a write, since that group is the root task group itself.
 */
export function autogroupNice(text: string): number | undefined {
  const match = /^\/autogroup-\d+ nice (-?\d+)$/m.exec(text);
  return match ? Number(match[1]) : undefined;
}

/** What `prioritizeGenerator` did: the process alone, or its session's group too; or why neither. */
export type Prioritized = { raised: 'process' | 'process and session' } | { problem: string };

/**
 * Lets the load client take the CPU before the system it measures, as it would on a machine of its
 * own: its timings then stay the system's. Every process the local runner starts leads a session
 * of its own, and with Linux's autogroup scheduling busy sessions share the CPU equally whatever a
 * process's nice value. In a failover's reconnect storm the client got one share among five or
 * six (nginx, three replicas) and lagged: a nice value alone changed nothing. So both the
 * process and its session's group are raised; workers it forks later inherit both. A process in
 * the default group (or a kernel without autogroups) competes by nice value alone, so the
 * process is enough there.
 *
 * Needs root (CAP_SYS_NICE).
 */
export function prioritizeGenerator(pid: number): Prioritized {
  try {
    setPriority(pid, GENERATOR_NICE);
    const group = `/proc/${pid}/autogroup`;
    if (!existsSync(group) || autogroupNice(readFileSync(group, 'utf8')) === undefined) return { raised: 'process' };
    writeFileSync(group, String(GENERATOR_NICE));
    return { raised: 'process and session' };
  } catch (error) {
    return { problem: (error as Error).message };
  }
}
