import { z } from 'zod';

/**
 * Who may connect, subscribe and publish. `jwt` (the default, as Centrifugo refuses anonymous
 * connections unless told otherwise): a connection's first message carries an access token from an
 * OpenID provider, checked against its JWKS; its claims map to topic grants. `none`: anyone who
 * reaches the proxy may subscribe to anything, and publish only with server.clientPublish (a
 * trusted network, a benchmark).
 */
export const AUTH_MODES = ['jwt', 'none'] as const;
export const GRANT_ACTIONS = ['subscribe', 'publish'] as const;
export type GrantAction = (typeof GRANT_ACTIONS)[number];

/**
 * Signature algorithms a token may use. Only asymmetric ones: with a shared secret, every replica
 * could mint tokens, and `HS256` signed with a public key is the classic confusion attack.
 */
export const TOKEN_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

/** The placeholder a grant's topic pattern may hold: the token's `sub`. */
export const SUBJECT_PLACEHOLDER = '{sub}';

/**
 * A topic pattern, NATS-style: dot-separated names; `*` stands for one name, a last `>` for one
 * or more; a name may be `{sub}` (the token's subject), e.g. `user.{sub}.>`.
 */
const TOPIC_PATTERN_RE = /^(?:[A-Za-z0-9_:-]+|\*|\{sub\})(?:\.(?:[A-Za-z0-9_:-]+|\*|\{sub\}))*(?:\.>)?$|^>$/;
export const topicPatternSchema = z
  .string()
  .max(128)
  .regex(
    TOPIC_PATTERN_RE,
    'must be a topic pattern: dot-separated names, `*` for one name, a last `>` for the rest, `{sub}` for the subject',
  );

/** A claim's path in the token: `roles`, or dotted into objects like Keycloak's `realm_access.roles`. */
const claimPath = z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$/, 'must be a claim name, dotted into objects');

/**
 * One grant: the topics a token may act on. Without `claim` it holds for every valid token; with
 * `claim` and `role`, for tokens whose claim equals the role or is a list holding it; with `claim`
 * alone, for tokens that carry the claim at all.
 */
export const grantSchema = z
  .object({
    claim: claimPath.optional(),
    role: z.string().min(1).max(256).optional(),
    topics: z.array(topicPatternSchema).min(1),
    allow: z.array(z.enum(GRANT_ACTIONS)).min(1),
  })
  .strict()
  .refine((g) => g.role === undefined || g.claim !== undefined, { message: 'a role needs the claim it is read from', path: ['role'] });
export type Grant = z.infer<typeof grantSchema>;

const positiveMs = z.number().int().positive();

export const authSchema = z
  .object({
    mode: z.enum(AUTH_MODES).default('jwt'),
    /**
     * The OpenID provider: its `/.well-known/openid-configuration` names the JWKS, and tokens must
     * carry it as `iss` (Keycloak's is `https://host/realms/<realm>`).
     */
    issuer: z.string().url().optional(),
    /** The JWKS, when the provider has no discovery document (then `iss` is checked against `issuer` only if that is set). */
    jwksUri: z.string().url().optional(),
    /** The `aud` tokens must carry (Keycloak: the client's id, or an audience mapper's value); absent, not checked. */
    audience: z.string().min(1).optional(),
    /** The signature algorithms accepted. */
    algorithms: z.array(z.enum(TOKEN_ALGORITHMS)).min(1).default(['RS256', 'PS256', 'ES256', 'EdDSA']),
    /** How far apart the provider's clock and a replica's may be, for `exp` and `nbf`. */
    clockSkewMs: z.number().int().min(0).max(300_000).default(5_000),
    /** A connection that has not sent its `connect` within this is closed (4001). */
    connectTimeoutMs: positiveMs.default(10_000),
    /** The server warns (`expiring`) this long before a token's `exp`, or at half its remaining life if that is sooner. */
    refreshAheadMs: positiveMs.default(30_000),
    /** A connection whose token expired and was not refreshed is closed (4005) this long after `exp`. */
    expiryGraceMs: z.number().int().min(0).default(5_000),
    /**
     * How long a revocation is kept (in the broker's bucket): at least the longest token lifetime,
     * after which every token it covered has expired anyway.
     */
    revocationTtlMs: positiveMs.default(86_400_000),
    /** Tokens longer than this are refused (4500) before any parsing. */
    maxTokenBytes: z.number().int().min(256).max(60_000).default(8_192),
    /**
     * A claim in which the provider lists grants itself, as `pattern:action[,action]` strings
     * (`news.*:subscribe`): for tokens minted per use, like Centrifugo's `channels`.
     */
    tokenGrantsClaim: claimPath.default('notify_grants'),
    grants: z.array(grantSchema).default([]),
    /** Topics anyone may subscribe to, with or without a token (a `connect` without one). */
    anonymous: z.array(topicPatternSchema).default([]),
  })
  .strict()
  .superRefine((a, ctx) => {
    if (a.mode === 'jwt' && a.issuer === undefined && a.jwksUri === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['issuer'],
        message:
          'auth.mode jwt needs the provider: set auth.issuer (or auth.jwksUri), or leave both out in a topology for the development IdP',
      });
    a.anonymous.forEach((p, i) => {
      if (p.includes(SUBJECT_PLACEHOLDER))
        ctx.addIssue({ code: 'custom', path: ['anonymous', i], message: 'an anonymous connection has no subject: {sub} cannot match' });
    });
  });
export type AuthConfig = z.infer<typeof authSchema>;
export type AuthInput = z.input<typeof authSchema>;

/** The `aud` of the development IdP's tokens. */
export const DEV_AUDIENCE = 'ws-notifications';

/** The roles the development IdP gives virtual users and `npm run token` users (Keycloak realm roles). */
export const DEV_ROLES = { reader: 'notify-reader', publisher: 'notify-publisher' } as const;

/** The development grants: readers subscribe to any topic, publishers publish to any, everyone to their own `user.<sub>.>`. */
export const DEV_GRANTS: readonly Grant[] = [
  { claim: 'realm_access.roles', role: DEV_ROLES.reader, topics: ['>'], allow: ['subscribe'] },
  { claim: 'realm_access.roles', role: DEV_ROLES.publisher, topics: ['>'], allow: ['publish'] },
  { topics: ['user.{sub}.>'], allow: ['subscribe', 'publish'] },
];

/**
 * The auth section for a run against the development IdP (the local runner's --auth, the Docker
 * stack's ws-idp): the dev grants, and the IdP's audience.
 */
export function devAuth(issuer: string, overrides: Partial<z.input<typeof authSchema>> = {}): AuthConfig {
  return authSchema.parse({ mode: 'jwt', issuer, audience: DEV_AUDIENCE, grants: DEV_GRANTS, ...overrides });
}

/**
 * Where the engine stack's development IdP (the ws-idp container) is reached: by replicas and the
 * load job on the service network, and by browsers through the proxy at `proxyPath` on the TLS
 * port (the page's sign-in). Its issuer stays the service-network URL either way: an issuer is a
 * name the tokens carry, and only the endpoints a browser calls need to be reachable from it.
 */
export const DEV_IDP = { host: 'ws-idp', port: 8090, proxyPath: '/idp' } as const;
export const DEV_IDP_ISSUER = `http://${DEV_IDP.host}:${DEV_IDP.port}`;

/** The origins a browser opens the notification page at, on a proxy's HTTPS port: its sign-in redirects back there. */
export function pageOrigins(httpsPort: number, hosts: readonly string[] = []): string[] {
  const port = httpsPort === 443 ? '' : `:${httpsPort}`;
  return ['localhost', '127.0.0.1', ...hosts].map((host) => `https://${host}${port}`);
}

/**
 * `auth.mode: 'jwt'` (or no mode: the default) with no provider named means the development IdP the deployment runs (the
 * ws-idp container, or the local runner's process): its issuer, its audience and, unless the
 * topology sets them, the dev grants. Applied to the topology's input, before validation.
 */
export function withDevelopmentIdp(auth: AuthInput): AuthInput {
  // Runs before validation: anything may come (authSchema then names the field).
  if (typeof auth !== 'object' || auth === null) return auth;
  // No mode given is jwt, the default.
  if ((auth.mode ?? 'jwt') !== 'jwt' || auth.issuer !== undefined || auth.jwksUri !== undefined) return auth;
  return { audience: DEV_AUDIENCE, grants: [...DEV_GRANTS], ...auth, issuer: DEV_IDP_ISSUER };
}

/** The topology's auth section: withDevelopmentIdp, then authSchema. */
export const topologyAuthSchema = z.preprocess(withDevelopmentIdp, authSchema);

/** Whether the deployment runs the development IdP (withDevelopmentIdp). */
export const usesDevelopmentIdp = (auth: AuthConfig): boolean => auth.mode === 'jwt' && auth.issuer === DEV_IDP_ISSUER;
