import { Kvm, type KV } from '@nats-io/kv';
import type { Identity } from './verifier';

/**
 * A revocation: a subject's tokens (a person locked out), or one token by its `jti` until it
 * expires anyway. For a subject, `at` is when it was revoked (ms): every connection it had
 * authenticated by then closes, whatever its token; `before` (seconds) is the not-before for later
 * connects, as Keycloak's policy has it: `iat` has whole seconds, so a token issued in the
 * revocation's own second (perhaps just after it) is still taken.
 */
export type Revocation = { sub: string; before: number; at: number } | { jti: string; until: number };

/** Checks a revocation as it comes off the wire (an admin request, the bucket). */
export function parseRevocation(value: unknown): Revocation | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as Record<string, unknown>;
  const text = (v: unknown) => typeof v === 'string' && v.length > 0 && v.length <= 256;
  if (text(r.sub) && Number.isSafeInteger(r.before) && Number.isSafeInteger(r.at))
    return { sub: r.sub as string, before: r.before as number, at: r.at as number };
  if (text(r.jti) && Number.isSafeInteger(r.until)) return { jti: r.jti as string, until: r.until as number };
  return undefined;
}

/** What this replica knows is revoked. Entries for tokens that have expired anyway are dropped. */
export class RevocationList {
  private readonly subjects = new Map<string, { before: number; at: number }>();
  private readonly tokens = new Map<string, number>();

  add(r: Revocation): void {
    if ('sub' in r) {
      const known = this.subjects.get(r.sub);
      this.subjects.set(r.sub, { before: Math.max(r.before, known?.before ?? 0), at: Math.max(r.at, known?.at ?? 0) });
    } else this.tokens.set(r.jti, r.until);
    const now = Date.now() / 1000;
    for (const [jti, until] of this.tokens) if (until < now) this.tokens.delete(jti);
  }

  /**
   * Whether a token is revoked; `adoptedAt` (ms), when a connection took it: a connection that
   * authenticated before its subject's revocation is revoked whatever the token's `iat`.
   */
  revokes(identity: Pick<Identity, 'sub' | 'jti' | 'issuedAt'>, adoptedAt?: number): boolean {
    const subject = this.subjects.get(identity.sub);
    if (subject && (identity.issuedAt < subject.before || (adoptedAt !== undefined && adoptedAt <= subject.at))) return true;
    return identity.jti !== undefined && this.tokens.has(identity.jti);
  }
}

/**
 * Revocations shared by every replica through the broker: a JetStream key-value bucket, one key
 * per subject or token, kept `ttlMs` (at least the longest token lifetime, after which what it
 * revoked has expired anyway). A replica that starts later reads what is still there.
 */
export class RevocationBus {
  private constructor(
    private readonly kv: KV,
    private readonly watch: Awaited<ReturnType<KV['watch']>>,
  ) {}

  static async open(
    nc: ConstructorParameters<typeof Kvm>[0],
    o: { bucket: string; ttlMs: number; replicas: number },
    onRevocation: (r: Revocation) => void,
    onError: (error: Error) => void,
  ): Promise<RevocationBus> {
    const kv = await new Kvm(nc).create(o.bucket, { ttl: o.ttlMs, history: 1, replicas: o.replicas });
    const watch = await kv.watch({ ignoreDeletes: true });
    void (async () => {
      for await (const entry of watch) {
        const r = parseRevocation(safeJson(entry.string()));
        if (r) onRevocation(r);
      }
    })().catch(onError);
    return new RevocationBus(kv, watch);
  }

  /** Stops watching. */
  close(): void {
    this.watch.stop();
  }

  /** Stores a revocation; every replica's watch (this one's too) applies it. */
  async publish(r: Revocation): Promise<void> {
    const key = 'sub' in r ? `sub.${Buffer.from(r.sub).toString('base64url')}` : `jti.${Buffer.from(r.jti).toString('base64url')}`;
    await this.kv.put(key, JSON.stringify(r));
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
