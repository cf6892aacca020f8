import type { ServerConfig } from '../app/src/topology';

/** The compression settings both parts of `npm run bench:compression` compare, and the real payloads they send. */
export interface Setting {
  name: string;
  server: Partial<ServerConfig>;
  /** The client offers permessage-deflate. */
  clientDeflate: boolean;
  /** The client subscribes with `delta: 'fossil'`. */
  delta: boolean;
}

export const ALL_SETTINGS: Setting[] = [
  { name: 'off', server: { compression: 'off' }, clientDeflate: false, delta: false },
  { name: 'deflate per connection', server: { compression: 'offered', deflate: 'per-connection' }, clientDeflate: true, delta: false },
  { name: 'deflate once', server: { compression: 'offered', deflate: 'once' }, clientDeflate: true, delta: false },
  { name: 'fossil delta', server: { compression: 'off', deltaTopics: ['>'] }, clientDeflate: false, delta: true },
  {
    name: 'delta + deflate once',
    server: { compression: 'offered', deflate: 'once', deltaTopics: ['>'] },
    clientDeflate: true,
    delta: true,
  },
];

/** SETTINGS=off,fossil delta: only these rows. */
export function chosenSettings(list = process.env.SETTINGS): Setting[] {
  if (!list) return ALL_SETTINGS;
  const names = list.split(',');
  const unknown = names.filter((n) => !ALL_SETTINGS.some((s) => s.name === n));
  if (unknown.length) throw new Error(`SETTINGS: unknown ${unknown.join(', ')} (known: ${ALL_SETTINGS.map((s) => s.name).join(', ')})`);
  return ALL_SETTINGS.filter((s) => names.includes(s.name));
}

/** The webhook events published, in this order (the load client's and the probe's). */
export const EVENTS = ['push', 'pull_request', 'issues', 'issue_comment', 'check_run', 'workflow_run'];
