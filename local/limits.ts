import { existsSync, readFileSync } from 'node:fs';

/**
 * The limits outside the load client that stop large runs, named from their own evidence: nginx's
 * error log (its alerts say which limit it hit) and the kernel's connection-tracking table.
 */
const NGINX_LIMIT_MESSAGES: [string, RegExp][] = [
  ['worker_connections are not enough', /worker_connections are not enough/],
  ['too many open files (nginx, EMFILE)', /Too many open files/],
  ['no free local port towards an upstream (EADDRNOTAVAIL)', /\(99: Cannot assign requested address\)/],
  ['upstream refused the connection', /connect\(\) failed \(111: Connection refused\)/],
  ['upstream timed out', /upstream timed out/],
  ['no live upstreams', /no live upstreams/],
];

/** How often each known limit appears in an nginx error log. */
export function nginxLimitsHit(errorLog: string): Record<string, number> {
  const hits: Record<string, number> = {};
  for (const line of errorLog.split('\n')) {
    for (const [name, pattern] of NGINX_LIMIT_MESSAGES) if (pattern.test(line)) hits[name] = (hits[name] ?? 0) + 1;
  }
  return hits;
}

/** The conntrack table's fill, when the kernel tracks connections (a full table drops new ones silently). */
export function conntrackFill(procDir = '/proc/sys/net/netfilter'): { count: number; max: number } | undefined {
  const count = `${procDir}/nf_conntrack_count`;
  const max = `${procDir}/nf_conntrack_max`;
  if (!existsSync(count) || !existsSync(max)) return undefined;
  return { count: Number(readFileSync(count, 'utf8')), max: Number(readFileSync(max, 'utf8')) };
}

/** What a run hit outside the client, as lines to print: nginx's known limits in its error logs, a nearly full conntrack table. */
export function limitsHitReport(nginxErrorLogs: string[]): string[] {
  const lines: string[] = [];
  const hits = nginxLimitsHit(nginxErrorLogs.map((f) => (existsSync(f) ? readFileSync(f, 'utf8') : '')).join('\n'));
  if (Object.keys(hits).length)
    lines.push(
      `nginx error log: ${Object.entries(hits)
        .map(([k, v]) => `${k} ×${v}`)
        .join('; ')}`,
    );
  const conntrack = conntrackFill();
  if (conntrack && conntrack.count >= 0.9 * conntrack.max)
    lines.push(`conntrack table ${conntrack.count} of ${conntrack.max}: nearly full (new connections are dropped when it is)`);
  return lines;
}
