import { CloseCode } from '../../shared/protocol';
import type { AuthConfig, GrantAction } from '../../topology/auth';
import { Permissions, permissionsFor } from './grants';
import { AuthFailure, type AuthFailureReason, type Identity, type TokenVerifier } from './verifier';

/** One connection's standing. */
export interface PeerAuth {
  /** Until its `connect` is accepted: the deadline, and whether a token is being checked. */
  pending?: { deadline: number; verifying: boolean };
  permissions: Permissions;
  /** The token's subject and expiry; absent for anonymous connections and with auth off. */
  identity?: Identity;
  /** When the current token was taken (ms): half its remaining life from then bounds the warning. */
  adoptedAt?: number;
  /** `expiring` was sent for the current token. */
  warned?: boolean;
}

/** How a refused token closes its connection. */
export interface AuthClose {
  readonly code: number;
  readonly reason: string;
  readonly failure: AuthFailureReason;
}

export type AuthOutcome = { ok: true } | { ok: false; close: AuthClose };

const NOTHING = new Permissions({ subscribe: [], publish: [] });

/**
 * The auth rules a replica applies to each connection: what it may do before and after its
 * `connect`, token checks, and when an expiring token is warned about and its connection closed.
 * The server sends and closes; this decides.
 */
export class AuthGate {
  constructor(
    private readonly auth: AuthConfig,
    private readonly verifier: TokenVerifier | undefined,
    /** Whether a verified token was revoked since (auth/revocations.ts). */
    private readonly revoked: (identity: Identity) => boolean = () => false,
    /** With auth off: whether clients may publish over the WebSocket (server.clientPublish). */
    private readonly clientPublish = false,
  ) {}

  get enabled(): boolean {
    return this.auth.mode === 'jwt';
  }

  /** A new connection's standing: with auth off, every subscription (and publishing with clientPublish); nothing until `connect` with it on. */
  open(now: number): PeerAuth {
    if (!this.enabled) return { permissions: this.clientPublish ? Permissions.all : Permissions.subscribeAll };
    return { pending: { deadline: now + this.auth.connectTimeoutMs, verifying: false }, permissions: NOTHING };
  }

  allows(state: PeerAuth, action: GrantAction, topic: string): boolean {
    return state.permissions.allows(action, topic);
  }

  /** A `connect`: with a token, checked; without, anonymous if the topology has anonymous topics. */
  async connect(state: PeerAuth, token: string | undefined): Promise<AuthOutcome> {
    state.pending!.verifying = true;
    if (token === undefined && this.auth.anonymous.length > 0) {
      state.pending = undefined;
      state.permissions = permissionsFor(undefined, this.auth);
      return { ok: true };
    }
    try {
      const identity = await this.checked(token);
      state.pending = undefined;
      this.adopt(state, identity);
      return { ok: true };
    } catch (error) {
      state.pending!.verifying = false;
      return { ok: false, close: closeFor(error) };
    }
  }

  /** A `refresh`: a valid token for the same subject replaces the current one (and its grants). */
  async refresh(state: PeerAuth, token: string): Promise<AuthOutcome> {
    try {
      const identity = await this.checked(token);
      if (identity.sub !== state.identity?.sub)
        return { ok: false, close: closeFor(new AuthFailure('subject_changed', 'a refresh must carry the same subject')) };
      this.adopt(state, identity);
      return { ok: true };
    } catch (error) {
      return { ok: false, close: closeFor(error) };
    }
  }

  /**
   * What is due for a connection at `now`: a close (no connect in time, a token expired past the
   * grace), a warning ahead of expiry (at refreshAheadMs, or half the token's life if sooner), or nothing.
   */
  due(state: PeerAuth, now: number): AuthClose | 'warn' | undefined {
    if (state.pending) {
      if (state.pending.verifying || now < state.pending.deadline) return undefined;
      return { code: CloseCode.authTimeout, reason: 'no connect in time', failure: 'connect_timeout' };
    }
    const identity = state.identity;
    if (!identity) return undefined;
    if (now > identity.expiresAt + this.auth.expiryGraceMs)
      return { code: CloseCode.tokenExpired, reason: 'token expired', failure: 'not_refreshed' };
    const ahead = Math.min(this.auth.refreshAheadMs, Math.max(0, (identity.expiresAt - (state.adoptedAt ?? now)) / 2));
    if (!state.warned && now >= identity.expiresAt - ahead) return 'warn';
    return undefined;
  }

  /**
   * A subscription token (Centrifugo's, for a private topic): signed by the same provider, for
   * this connection's subject, naming the topic in its `channel` claim. It lets the connection
   * subscribe to that topic whatever the grants say, until it expires. Resolves with its expiry.
   */
  async subscription(
    state: PeerAuth,
    topic: string,
    token: string,
  ): Promise<{ ok: true; expiresAt: number } | { ok: false; failure: AuthFailureReason; reason: string }> {
    try {
      const identity = await this.checked(token);
      if (identity.sub !== state.identity?.sub)
        throw new AuthFailure('subject_changed', "a subscription token must carry the connection's subject");
      if (identity.claims.channel !== topic) throw new AuthFailure('claims', `the subscription token is not for ${topic}`);
      return { ok: true, expiresAt: identity.expiresAt };
    } catch (error) {
      if (!(error instanceof AuthFailure)) throw error;
      return { ok: false, failure: error.reason, reason: error.message };
    }
  }

  /** A backend's bearer token (the publish API): its permissions, or an AuthFailure. */
  async bearer(token: string): Promise<Permissions> {
    return permissionsFor((await this.checked(token)).claims, this.auth);
  }

  /** A token verified and not revoked. */
  private async checked(token: string | undefined): Promise<Identity> {
    const identity = await this.verifier!.verify(token);
    if (this.revoked(identity)) throw new AuthFailure('revoked', 'this token was revoked');
    return identity;
  }

  private adopt(state: PeerAuth, identity: Identity): void {
    state.identity = identity;
    state.adoptedAt = Date.now();
    state.permissions = permissionsFor(identity.claims, this.auth);
    state.warned = false;
  }
}

/** A refused token's close: 1013 when the provider could not be asked (try again), 4500 otherwise. */
function closeFor(error: unknown): AuthClose {
  if (!(error instanceof AuthFailure)) throw error;
  const code =
    error.reason === 'jwks_unavailable' ? CloseCode.tryAgainLater : error.reason === 'revoked' ? CloseCode.revoked : CloseCode.invalidToken;
  // A close reason is at most 123 bytes.
  return { code, reason: `${error.reason}: ${error.message}`.slice(0, 120), failure: error.reason };
}
