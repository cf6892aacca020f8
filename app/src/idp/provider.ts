import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { DEV_AUDIENCE, DEV_ROLES } from '../topology/auth';
import { TOPIC_PATTERN } from '../shared/protocol';
import { BACKEND_CLIENT, DEV_CLIENT, DEV_USER_GRANT, PAGE_CLIENT } from './clients';
import Provider, {
  type ClientMetadata,
  type KoaContextWithOIDC,
  type ResourceServer,
  type ResourceServerInstance,
  type TokenEndpointGrantContext,
} from 'oidc-provider';

/**
 * The development OpenID provider: panva's oidc-provider, certified, with its real discovery,
 * JWKS and token endpoint. It is what `npm run local -- --auth`, the tests and `npm run token`
 * use; production points auth.issuer at the user's own provider (Keycloak, Auth0, ...).
 */

/** The resource indicator (RFC 8707) the tokens are for: an absolute URI, as the provider requires. */
const DEV_RESOURCE = `urn:${DEV_AUDIENCE}`;
/** The longest token the dev grant mints. */
const MAX_TTL_SECONDS = 24 * 3600;

export interface DevProviderOptions {
  /** The issuer URL, as clients reach it (the discovery document names it). */
  readonly issuer: string;
  /** The published keys (its JWKS). */
  readonly keys: readonly JWK[];
  /** The kid of the one that signs. */
  readonly signingKid: string;
  /** The secret of both clients. */
  readonly clientSecret: string;
  /**
   * Lifetime of client-credentials tokens.
   * @default 600
   */
  readonly tokenTtlSeconds?: number;
  /**
   * Origins of the notification page: its public client (PAGE_CLIENT) signs people in there with
   * the authorization code flow and PKCE, through oidc-provider's development login form.
   * @default none: no page client, no login form
   */
  readonly pageOrigins?: readonly string[];
}

/**
 * How the provider signs: RS256, OpenID Connect's default and Keycloak's. A replica checks a token
 * at every connect, and an RS256 check is the cheapest there is (docs/benchmarks/auth.md).
 */
export const SIGNING_ALG = 'RS256';

/** A fresh signing key with a random kid, as the provider's JWKS needs it. */
export async function newSigningKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair(SIGNING_ALG, { extractable: true });
  return { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: SIGNING_ALG, use: 'sig' };
}

interface DevUserParams {
  sub?: string;
  roles?: string;
  grants?: string;
  ttl?: string;
  /** A subscription token's topic (Centrifugo's protocol: its `channel` claim). */
  channel?: string;
}

/** The claims a dev user's token carries: Keycloak's layout (realm_access.roles, preferred_username, azp) and the listed grants. */
interface DevClaims {
  preferred_username: string;
  realm_access: { roles: string[] };
  notify_grants?: string[];
  channel?: string;
}

/** The provider's resource server class: public at run time, missing from its types. */
type WithResourceServer = { ResourceServer: new (identifier: string, info: ResourceServer) => ResourceServerInstance };

export function createDevProvider(o: DevProviderOptions): Provider {
  const pages = o.pageOrigins ?? [];
  const words = (s: string | undefined) => (s ?? '').split(' ').filter(Boolean);
  const resourceServer: ResourceServer = {
    scope: 'notify',
    audience: DEV_AUDIENCE,
    accessTokenTTL: o.tokenTtlSeconds ?? 600,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: SIGNING_ALG, kid: o.signingKid } },
  };
  const provider = new Provider(o.issuer, {
    jwks: { keys: [...o.keys] },
    ttl: { ClientCredentials: o.tokenTtlSeconds ?? 600 },
    clients: [
      {
        client_id: BACKEND_CLIENT,
        client_secret: o.clientSecret,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        id_token_signed_response_alg: SIGNING_ALG,
      },
      {
        client_id: DEV_CLIENT,
        client_secret: o.clientSecret,
        grant_types: [DEV_USER_GRANT],
        redirect_uris: [],
        response_types: [],
        id_token_signed_response_alg: SIGNING_ALG,
      },
      ...(pages.length > 0
        ? [
            {
              client_id: PAGE_CLIENT,
              token_endpoint_auth_method: 'none',
              grant_types: ['authorization_code', 'refresh_token'],
              response_types: ['code'],
              redirect_uris: pages.map((origin) => `${origin}/`),
              id_token_signed_response_alg: SIGNING_ALG,
            } satisfies ClientMetadata,
          ]
        : []),
    ],
    // The page calls the token endpoint from its own origin.
    clientBasedCORS: (_ctx, origin, client) => client.clientId === PAGE_CLIENT && pages.includes(origin),
    // Whoever signs in on the development login form is that user: no passwords, no store.
    findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub, preferred_username: sub }) }),
    features: {
      clientCredentials: { enabled: true },
      devInteractions: { enabled: pages.length > 0 },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => DEV_RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: () => resourceServer,
      },
    },
    extraTokenClaims: (_ctx: KoaContextWithOIDC, token) => {
      // A backend's token carries its service account's role, as Keycloak's does: it may publish.
      if (token.kind === 'ClientCredentials' && token.clientId === BACKEND_CLIENT)
        return { realm_access: { roles: [DEV_ROLES.publisher] }, azp: BACKEND_CLIENT };
      // A person signed in on the page: no roles, so their own topics (user.{sub}.>) only.
      if (token.kind === 'AccessToken' && token.clientId === PAGE_CLIENT)
        return { preferred_username: token.accountId, realm_access: { roles: [] }, azp: PAGE_CLIENT };
      return (token as { extra?: object }).extra as Record<string, unknown> | undefined;
    },
  });
  // Behind the proxy (DEV_IDP.proxyPath) the URLs it hands out are the browser's: X-Forwarded-Proto
  // and -Host say what the browser reached. Only the proxy and the service network reach it.
  provider.proxy = true;
  provider.registerGrantType<DevUserParams>(
    DEV_USER_GRANT,
    async (ctx: TokenEndpointGrantContext<DevUserParams>) => {
      const { sub, roles, grants, ttl, channel } = ctx.oidc.params;
      const seconds = Number(ttl ?? 600);
      const badChannel = channel !== undefined && !TOPIC_PATTERN.test(channel);
      if (
        !sub ||
        !/^[A-Za-z0-9_:-]{1,64}$/.test(sub) ||
        badChannel ||
        !Number.isInteger(seconds) ||
        seconds < 1 ||
        seconds > MAX_TTL_SECONDS
      ) {
        ctx.status = 400;
        ctx.body = {
          error: 'invalid_request',
          error_description: `sub must be a name (letters, digits, _ : -), channel a topic and ttl 1..${MAX_TTL_SECONDS} seconds`,
        };
        return;
      }
      const claims: DevClaims = { preferred_username: sub, realm_access: { roles: words(roles) } };
      if (grants) claims.notify_grants = words(grants);
      if (channel) claims.channel = channel;
      const token = new provider.AccessToken({
        client: ctx.oidc.client,
        accountId: sub,
        grantId: randomUUID(),
        gty: DEV_USER_GRANT,
        scope: 'notify',
        resourceServer: new (provider as unknown as WithResourceServer).ResourceServer(DEV_RESOURCE, resourceServer),
        expiresIn: seconds,
        extra: { ...claims, azp: ctx.oidc.client.clientId },
      });
      ctx.body = { access_token: await token.save(), token_type: 'Bearer', expires_in: seconds, scope: 'notify' };
    },
    ['sub', 'roles', 'grants', 'ttl', 'channel', 'resource'],
  );
  return provider;
}
