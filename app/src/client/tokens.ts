import { readFileSync } from 'node:fs';
import { devUserToken } from '../idp/tokens';
import type { LoadProfile } from '../shared/profile';
import { DEV_ROLES } from '../topology/auth';

export interface HeldToken {
  readonly token: string;
  /** Milliseconds since the epoch. */
  readonly expiresAt: number;
}

/**
 * Each virtual user's tokens, from the OpenID provider the profile names: the subject vu-<index>,
 * the reader role, and the publisher role for senders (the grants of topology/auth.ts's devAuth).
 */
/** A virtual user's subject: who it is to the provider and in the revocations. */
export const virtualUserSubject = (index: number): string => `vu-${index}`;

/** Tokens fetched at once before the load starts. */
const PREFETCH_CONCURRENCY = 8;

export class TokenSource {
  private readonly secret: string;
  /** Fetched ahead (prefetch), by user index, until taken. */
  private readonly ready = new Map<number, HeldToken>();

  constructor(private readonly config: NonNullable<LoadProfile['tokens']>) {
    this.secret = readFileSync(config.secretFile, 'utf8').trim();
  }

  /**
   * Fetches the users' first tokens before the load starts, as an application has its session's
   * token before it connects: the provider's work stays out of the connect times measured.
   */
  async prefetch(users: readonly { index: number; sender: boolean }[], fetched: () => void): Promise<void> {
    let next = 0;
    const lane = async () => {
      while (next < users.length) {
        const { index, sender } = users[next++];
        // One that fails is fetched again by its user when it connects (and counted there).
        const held = await this.token(index, sender).catch(() => undefined);
        if (!held) continue;
        this.ready.set(index, held);
        fetched();
      }
    };
    await Promise.all(Array.from({ length: PREFETCH_CONCURRENCY }, lane));
  }

  /** The token fetched ahead for this user, once. */
  take(index: number): HeldToken | undefined {
    const held = this.ready.get(index);
    this.ready.delete(index);
    return held;
  }

  async token(index: number, sender: boolean): Promise<HeldToken> {
    const roles = sender ? [DEV_ROLES.reader, DEV_ROLES.publisher] : [DEV_ROLES.reader];
    const ttlSeconds = Math.round(this.config.ttlMs / 1000);
    const { token, expiresIn } = await devUserToken(this.config.issuer, this.secret, { sub: virtualUserSubject(index), roles, ttlSeconds });
    return { token, expiresAt: Date.now() + expiresIn * 1000 };
  }
}
