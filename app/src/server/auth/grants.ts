import { topicMatches } from '../topics';
import { SUBJECT_PLACEHOLDER, type AuthConfig, type GrantAction } from '../../topology/auth';

/** What one connection may do: the topic patterns it holds per action, `{sub}` already filled in. */
export class Permissions {
  constructor(private readonly patterns: Readonly<Record<GrantAction, readonly string[][]>>) {}

  /** Everything (auth off, with server.clientPublish). */
  static readonly all = new Permissions({ subscribe: [['>']], publish: [['>']] });

  /** Every subscription, no publishing (auth off: clients read; backends publish through the API). */
  static readonly subscribeAll = new Permissions({ subscribe: [['>']], publish: [] });

  allows(action: GrantAction, topic: string): boolean {
    const names = topic.split('.');
    return this.patterns[action].some((p) => topicMatches(p, names));
  }

  /** For the logs and the `hello` message: each action's patterns as written. */
  describe(): Record<GrantAction, string[]> {
    return { subscribe: this.patterns.subscribe.map((p) => p.join('.')), publish: this.patterns.publish.map((p) => p.join('.')) };
  }
}

/** A subject that can stand in a topic name; any other (a `.`, a space) makes `{sub}` patterns match nothing. */
const SUBJECT_NAME = /^[A-Za-z0-9_:-]{1,64}$/;

/** A pattern with `{sub}` filled in, as names; undefined when there is no usable subject. */
function expand(pattern: string, sub: string | undefined): string[] | undefined {
  const names = pattern.split('.');
  if (!names.includes(SUBJECT_PLACEHOLDER)) return names;
  if (sub === undefined || !SUBJECT_NAME.test(sub)) return undefined;
  return names.map((n) => (n === SUBJECT_PLACEHOLDER ? sub : n));
}

/** A claim by dotted path (`realm_access.roles`), or undefined. */
export function claimAt(claims: Record<string, unknown>, path: string): unknown {
  let value: unknown = claims;
  for (const key of path.split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

function holdsRole(value: unknown, role: string | undefined): boolean {
  if (role === undefined) return value !== undefined && value !== null && value !== false;
  return Array.isArray(value) ? value.includes(role) : value === role;
}

/** `news.*:subscribe,publish` → the pattern and its actions; anything else is skipped. */
function parseTokenGrant(text: unknown): { pattern: string; allow: GrantAction[] } | undefined {
  if (typeof text !== 'string') return undefined;
  const at = text.lastIndexOf(':');
  if (at <= 0) return undefined;
  const allow = text
    .slice(at + 1)
    .split(',')
    .filter((a): a is GrantAction => a === 'subscribe' || a === 'publish');
  return allow.length > 0 ? { pattern: text.slice(0, at), allow } : undefined;
}

/** A pattern as the topology's schema would take it (token grants are not schema-checked). */
const PATTERN_NAME = /^(?:[A-Za-z0-9_:-]+|\*|\{sub\}|>)$/;
const validPattern = (p: string) =>
  p.length <= 128 && p.split('.').every((n, i, all) => PATTERN_NAME.test(n) && (n !== '>' || i === all.length - 1));

/**
 * A token's permissions: the topology's grants whose claim and role it holds, the grants its own
 * grants claim lists, and the anonymous topics (subscribe only).
 */
export function permissionsFor(claims: Record<string, unknown> | undefined, auth: AuthConfig): Permissions {
  const out: Record<GrantAction, string[][]> = { subscribe: [], publish: [] };
  const add = (pattern: string, allow: readonly GrantAction[]) => {
    const names = expand(pattern, typeof claims?.sub === 'string' ? claims.sub : undefined);
    if (names) for (const action of allow) out[action].push(names);
  };
  for (const pattern of auth.anonymous) add(pattern, ['subscribe']);
  if (claims) {
    for (const grant of auth.grants) {
      if (grant.claim === undefined || holdsRole(claimAt(claims, grant.claim), grant.role))
        for (const pattern of grant.topics) add(pattern, grant.allow);
    }
    const listed = claimAt(claims, auth.tokenGrantsClaim);
    for (const entry of Array.isArray(listed) ? listed : []) {
      const grant = parseTokenGrant(entry);
      if (grant && validPattern(grant.pattern)) add(grant.pattern, grant.allow);
    }
  }
  return new Permissions(out);
}
