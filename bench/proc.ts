import { readdirSync, readFileSync } from 'node:fs';

/**
 * What the benchmarks read about processes from /proc: CPU seconds, resident memory, parent,
 * command line. One reader for all of them.
 */

/** Which part of the system a process is, from its command line; undefined: not ours. */
export type Classify = (cmdline: string, pid: number) => string | undefined;

/** The local topology's processes and the load client's, by what they run. */
export const classifyLocal: Classify = (cmdline, pid) => {
  if (pid === process.pid) return 'load client';
  if (cmdline.includes('client/worker')) return 'load client';
  if (cmdline.includes('server/main')) return 'replicas';
  if (cmdline.startsWith('nats-server')) return 'nats-server';
  if (cmdline.startsWith('nginx')) return 'nginx';
  return undefined;
};

export const TICKS = 100; // USER_HZ on Linux
const PAGE = 4096;

/** Every process id now. */
export function pids(): number[] {
  return readdirSync('/proc').map(Number).filter(Number.isInteger);
}

export function cmdlineOf(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
}

/** /proc/PID/stat after the command name (which may hold spaces): ppid is [1], utime and stime [11] and [12]. */
function statFields(pid: number): string[] {
  return readFileSync(`/proc/${pid}/stat`, 'utf8')
    .replace(/^.*\) /, '')
    .split(' ');
}

/**
 * One process's CPU seconds so far (user + system, and system alone: its time in the kernel, where
 * a loopback write also runs the receiving socket's TCP path) and resident bytes; undefined once it is gone.
 */
export function usageOf(pid: number): { cpuSeconds: number; systemSeconds: number; rssBytes: number } | undefined {
  try {
    const fields = statFields(pid);
    const resident = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    const system = Number(fields[12]) / TICKS;
    return { cpuSeconds: Number(fields[11]) / TICKS + system, systemSeconds: system, rssBytes: resident * PAGE };
  } catch {
    return undefined;
  }
}

/** Every process below `root` (and root). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const pid of pids()) {
    try {
      const ppid = Number(statFields(pid)[1]);
      (children.get(ppid) ?? children.set(ppid, []).get(ppid)!).push(pid);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    out.push(pid);
    for (const c of children.get(pid) ?? []) walk(c);
  };
  walk(root);
  return out;
}

/** The processes the classifier knows, each with its part and usage now. */
function byPart(classify: Classify): { pid: number; part: string; usage: NonNullable<ReturnType<typeof usageOf>> }[] {
  const out = [];
  for (const pid of pids()) {
    try {
      const part = classify(cmdlineOf(pid), pid);
      const usage = part ? usageOf(pid) : undefined;
      if (part && usage) out.push({ pid, part, usage });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** CPU seconds (user + system, and system alone) used so far by every process the classifier knows, per part. */
export function cpuSeconds(classify: Classify = classifyLocal): Map<number, { part: string; seconds: number; system: number }> {
  return new Map(byPart(classify).map(({ pid, part, usage }) => [pid, { part, seconds: usage.cpuSeconds, system: usage.systemSeconds }]));
}

/**
 * CPU seconds per part between two samples (a process that started in between counts from zero):
 * all of it, or (`system`) the kernel's share.
 */
export function cpuBetween(
  before: ReturnType<typeof cpuSeconds>,
  after: ReturnType<typeof cpuSeconds>,
  which: 'seconds' | 'system' = 'seconds',
): Record<string, number> {
  const parts: Record<string, number> = {};
  for (const [pid, now] of after) parts[now.part] = (parts[now.part] ?? 0) + now[which] - (before.get(pid)?.[which] ?? 0);
  return Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, Math.round(v * 10) / 10]));
}

/** Resident memory (MB) per part now, and how many processes each part has. */
export function rssByPart(classify: Classify = classifyLocal): Record<string, { mb: number; processes: number }> {
  const parts: Record<string, { mb: number; processes: number }> = {};
  for (const { part, usage } of byPart(classify)) {
    const p = (parts[part] ??= { mb: 0, processes: 0 });
    p.mb += usage.rssBytes / 1e6;
    p.processes++;
  }
  return Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, { mb: Math.round(v.mb), processes: v.processes }]));
}

/** The machine's busy and total jiffies so far, over all cores (/proc/stat's first line; idle and iowait are not busy). */
export function machineTicks(): { busy: number; total: number } {
  const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  return { busy: total - fields[3] - (fields[4] ?? 0), total };
}
