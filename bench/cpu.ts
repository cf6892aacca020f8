import { readdirSync, readFileSync } from 'node:fs';

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

const TICKS = 100; // USER_HZ on Linux

/** CPU seconds (user + system) used so far by every process the classifier knows, per part. */
export function cpuSeconds(classify: Classify = classifyLocal): Map<number, { part: string; seconds: number }> {
  const out = new Map<number, { part: string; seconds: number }>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      const part = classify(cmdline, pid);
      if (!part) continue;
      // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
      out.set(pid, { part, seconds: (Number(fields[11]) + Number(fields[12])) / TICKS });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** CPU seconds per part between two samples (a process that started in between counts from zero). */
export function cpuBetween(before: ReturnType<typeof cpuSeconds>, after: ReturnType<typeof cpuSeconds>): Record<string, number> {
  const parts: Record<string, number> = {};
  for (const [pid, { part, seconds }] of after) parts[part] = (parts[part] ?? 0) + seconds - (before.get(pid)?.seconds ?? 0);
  return Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, Math.round(v * 10) / 10]));
}

/** Resident memory (MB) per part now, and how many processes each part has. */
export function rssByPart(classify: Classify = classifyLocal): Record<string, { mb: number; processes: number }> {
  const parts: Record<string, { mb: number; processes: number }> = {};
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const part = classify(readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim(), pid);
      if (!part) continue;
      const resident = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4096;
      const p = (parts[part] ??= { mb: 0, processes: 0 });
      p.mb += resident / 1e6;
      p.processes++;
    } catch {
      // gone meanwhile
    }
  }
  return Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, { mb: Math.round(v.mb), processes: v.processes }]));
}
