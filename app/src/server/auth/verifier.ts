import { KeyObject, type webcrypto } from 'node:crypto';
import { createVerifier, TokenError } from 'fast-jwt';
import {
  createRemoteJWKSet,
  customFetch,
  decodeProtectedHeader,
  errors,
  type JWK,
  type JWSHeaderParameters,
  type JWTPayload,
  type RemoteJWKSet,
} from 'jose';
import type { AuthConfig } from '../../topology/auth';

/** Why a token was refused: the `reason` label of ws_auth_failures_total, and the close reason's first word. */
export const AUTH_FAILURE_REASONS = [
  'missing',
  'too_large',
  'malformed',
  'algorithm',
  'signature',
  'unknown_key',
  'expired',
  'not_yet_valid',
  'issuer',
  'audience',
  'claims',
  'subject_changed',
  'jwks_unavailable',
  'connect_timeout',
  /** A message out of order: anything but `connect` first, a second `connect`. */
  'protocol',
  'not_refreshed',
  'revoked',
] as const;
export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number];

export class AuthFailure extends Error {
  constructor(
    readonly reason: AuthFailureReason,
    message: string,
  ) {
    super(message);
  }
}

/** A verified token: its subject, expiry and claims. */
export interface Identity {
  readonly sub: string;
  /** Milliseconds since the epoch. */
  readonly expiresAt: number;
  /** Its `iat`, seconds since the epoch (0 when absent: then any revocation of its subject covers it). */
  readonly issuedAt: number;
  readonly jti?: string;
  readonly claims: JWTPayload;
}

/** How long one JWKS or discovery request may take. */
const FETCH_TIMEOUT_MS = 5_000;
/** An unknown `kid` refetches the JWKS at most this often (jose's cooldown). */
const UNKNOWN_KID_COOLDOWN_MS = 30_000;
/** The keys are refetched in the background this often; a failure keeps the known ones. */
const BACKGROUND_REFRESH_MS = 10 * 60_000;

/** Observers the replica counts with (ws_auth_jwks_fetches_total). */
export interface VerifierEvents {
  jwksFetched(result: 'ok' | 'failed'): void;
  log(error: Error, what: string): void;
}

/**
 * Checks access tokens against the provider's JWKS. The keys are fetched on first use and
 * cached with no age limit: a connect never waits on the provider for a key it knows, and a
 * provider that is down or hangs blocks only tokens signed with a key not seen yet. The set is
 * refreshed in the background, and at once (at most every 30 s) on an unknown `kid`: that is how
 * a rotated key is picked up.
 *
 * jose keeps the key set (discovery, caching, the cooldown); fast-jwt checks the token with
 * node:crypto's synchronous verify. jose's own check runs on WebCrypto, which hops to libuv's
 * thread pool and back, and cost two to three times the CPU (docs/benchmarks/auth.md).
 */
export class TokenVerifier {
  private keys?: Promise<RemoteJWKSet>;
  private refresher?: NodeJS.Timeout;
  /** A fast-jwt verifier per key jose imported: fast-jwt parses a key given up front once, a fetched one per token. */
  private readonly checks = new WeakMap<object, (token: string) => JWTPayload>();

  constructor(
    private readonly auth: AuthConfig,
    private readonly events: VerifierEvents,
  ) {}

  /** Verifies a token; throws AuthFailure with the reason. */
  async verify(token: unknown): Promise<Identity> {
    if (typeof token !== 'string' || token.length === 0) throw new AuthFailure('missing', 'connect needs a token');
    if (Buffer.byteLength(token) > this.auth.maxTokenBytes)
      throw new AuthFailure('too_large', `the token is over ${this.auth.maxTokenBytes} bytes`);
    // Checked before any key is looked up: `alg: none` or HS256 never reach the JWKS.
    let header: JWSHeaderParameters;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new AuthFailure('malformed', 'the token is not a JWS');
    }
    const { alg } = header;
    if (!alg || !(this.auth.algorithms as readonly string[]).includes(alg))
      throw new AuthFailure('algorithm', `the token's algorithm ${JSON.stringify(alg)} is not accepted`);
    let key: webcrypto.CryptoKey;
    try {
      key = await (await this.jwks())(header);
    } catch (error) {
      throw this.keyFailure(error as Error);
    }
    let payload: JWTPayload;
    try {
      payload = this.checkFor(key)(token);
    } catch (error) {
      throw this.failure(error as Error);
    }
    if (typeof payload.sub !== 'string' || payload.sub === '') throw new AuthFailure('claims', "the token's sub claim is not a string");
    return { sub: payload.sub, expiresAt: payload.exp! * 1000, issuedAt: payload.iat ?? 0, jti: payload.jti, claims: payload };
  }

  /**
   * Fetches the keys now (at the replica's start) and readies them, so the first connects do not
   * wait on the provider; a failure is logged and the first connect tries again. Resolves with
   * how many keys were readied.
   */
  prime(): Promise<number> {
    return this.jwks()
      .then((set) => this.refresh(set))
      .catch((error: Error) => {
        this.events.log(error, 'the first JWKS fetch failed; the first connect tries again');
        return 0;
      });
  }

  /** Fetches the set again and readies its keys; resolves with how many. */
  private async refresh(set: RemoteJWKSet): Promise<number> {
    await set.reload();
    return this.ready(set);
  }

  /**
   * Imports each key of the set and builds its check now, not at the first token it signs: on a
   * replica that just started, those took about 16 ms of the event loop at its first connect, and
   * every connect arriving meanwhile waited (docs/benchmarks/auth.md).
   */
  private async ready(set: RemoteJWKSet): Promise<number> {
    let readied = 0;
    for (const jwk of set.jwks()?.keys ?? []) {
      const alg = algorithmFor(jwk, this.auth.algorithms);
      if (!alg || !jwk.kid) continue;
      const key = await set({ alg, kid: jwk.kid }).catch(() => undefined);
      if (!key) continue;
      this.checkFor(key);
      readied++;
    }
    return readied;
  }

  /** Stops the background refresh. */
  close(): void {
    if (this.refresher) clearInterval(this.refresher);
  }

  /** fast-jwt's error as the documented reason. */
  private failure(error: Error): AuthFailure {
    if (!(error instanceof TokenError)) throw error;
    switch (error.code) {
      case TokenError.codes.expired:
        return new AuthFailure('expired', 'the token has expired');
      case TokenError.codes.inactive:
        return new AuthFailure('not_yet_valid', 'the token is not valid yet (nbf)');
      case TokenError.codes.invalidClaimValue:
      case TokenError.codes.invalidClaimType:
      case TokenError.codes.missingRequiredClaim: {
        // fast-jwt names the claim only in its message: "The iss claim value is not allowed."
        const claim = /\b(iss|aud)\b claim/.exec(error.message)?.[1];
        const reason = claim === 'iss' ? 'issuer' : claim === 'aud' ? 'audience' : 'claims';
        return new AuthFailure(reason, `the token's claims are not accepted: ${error.message}`);
      }
      case TokenError.codes.invalidAlgorithm:
      case TokenError.codes.invalidKey:
        return new AuthFailure('algorithm', "the token's algorithm is not accepted");
      case TokenError.codes.invalidSignature:
      case TokenError.codes.verifyError:
        return new AuthFailure('signature', "the token's signature does not verify");
      default:
        return new AuthFailure('malformed', 'the token is not a valid JWT');
    }
  }

  /** Why no key was had for a token: not in the JWKS, or the JWKS could not be fetched. */
  private keyFailure(error: Error): AuthFailure {
    if (error instanceof AuthFailure) return error;
    if (error instanceof errors.JWKSNoMatchingKey)
      return new AuthFailure('unknown_key', "the token's key (kid) is not in the provider's JWKS");
    // A fetch that failed, timed out, or answered something other than a key set (jose's generic error).
    if (error instanceof errors.JWKSTimeout || !(error instanceof errors.JOSEError) || error.code === 'ERR_JOSE_GENERIC') {
      this.events.log(error, 'the JWKS could not be fetched');
      return new AuthFailure('jwks_unavailable', "the provider's keys could not be fetched; try again");
    }
    return new AuthFailure('malformed', 'the token is not a valid JWT');
  }

  /**
   * fast-jwt's synchronous check for one key: the token's algorithm must be one this key can
   * verify (fast-jwt reads them from the key) and the topology accepts (checked before).
   */
  private checkFor(key: webcrypto.CryptoKey): (token: string) => JWTPayload {
    let check = this.checks.get(key);
    if (!check) {
      check = createVerifier({
        key: KeyObject.from(key).export({ type: 'spki', format: 'pem' }) as string,
        allowedIss: this.auth.issuer,
        allowedAud: this.auth.audience,
        clockTolerance: this.auth.clockSkewMs,
        requiredClaims: ['exp', 'sub'],
      });
      this.checks.set(key, check);
    }
    return check;
  }

  /** The key set, found through discovery once; a failed discovery is tried again on the next connect. */
  private jwks(): Promise<RemoteJWKSet> {
    this.keys ??= this.discover();
    return this.keys;
  }

  /** One discovery: the key set, or (logged, and forgotten so the next connect asks again) jwks_unavailable. */
  private discover(): Promise<RemoteJWKSet> {
    return this.jwksUri()
      .then((uri) => {
        const set = createRemoteJWKSet(new URL(uri), {
          timeoutDuration: FETCH_TIMEOUT_MS,
          cooldownDuration: UNKNOWN_KID_COOLDOWN_MS,
          cacheMaxAge: Number.POSITIVE_INFINITY,
          // Each fetch counted (ws_auth_jwks_fetches_total); jose's own fetch does the rest.
          [customFetch]: (url, init) =>
            fetch(url, init).then(
              (response) => {
                this.events.jwksFetched(response.status === 200 ? 'ok' : 'failed');
                return response;
              },
              (error: Error) => {
                this.events.jwksFetched('failed');
                throw error;
              },
            ),
        });
        this.refresher = setInterval(() => {
          this.refresh(set).catch((error: Error) => this.events.log(error, 'background JWKS refresh failed; the known keys stay'));
        }, BACKGROUND_REFRESH_MS).unref();
        return set;
      })
      .catch((error: Error) => {
        this.keys = undefined;
        this.events.log(error, 'OpenID discovery failed');
        throw new AuthFailure('jwks_unavailable', 'the provider could not be reached; try again');
      });
  }

  private async jwksUri(): Promise<string> {
    if (this.auth.jwksUri) return this.auth.jwksUri;
    const url = `${this.auth.issuer!.replace(/\/$/, '')}/.well-known/openid-configuration`;
    const response = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), redirect: 'manual' });
    if (response.status !== 200) throw new Error(`${url} answered ${response.status}`);
    const document = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown };
    if (document.issuer !== this.auth.issuer)
      throw new Error(`${url} names issuer ${JSON.stringify(document.issuer)}, not ${this.auth.issuer}`);
    if (typeof document.jwks_uri !== 'string') throw new Error(`${url} names no jwks_uri`);
    return document.jwks_uri;
  }
}

/** The curve each ECDSA algorithm signs with (RFC 7518 §3.4). */
const EC_ALGORITHMS: Record<string, string> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' };

/** An algorithm the topology accepts that `jwk` can verify: its own `alg`, else one its type and curve allow. */
export function algorithmFor(jwk: JWK, accepted: readonly string[]): string | undefined {
  if (jwk.alg) return accepted.includes(jwk.alg) ? jwk.alg : undefined;
  return accepted.find((alg) => {
    if (jwk.kty === 'RSA') return /^(RS|PS)\d+$/.test(alg);
    if (jwk.kty === 'EC') return EC_ALGORITHMS[jwk.crv ?? ''] === alg;
    return jwk.kty === 'OKP' && alg === 'EdDSA';
  });
}
