import { BACKEND_CLIENT, DEV_CLIENT, DEV_USER_GRANT } from './clients';

/** A person's token from the development IdP: its `sub`, Keycloak-style roles, listed grants (`news.*:subscribe`), lifetime. */
export interface DevUserToken {
  readonly sub: string;
  readonly roles?: readonly string[];
  readonly grants?: readonly string[];
  /** @default 600 */
  readonly ttlSeconds?: number;
  /** A subscription token for this topic (its `channel` claim), for Centrifugo's protocol. @default none */
  readonly channel?: string;
}

/** Each issuer's token endpoint, from its discovery document (asked once per process; a failure is asked again). */
const endpoints = new Map<string, Promise<string>>();
function tokenEndpoint(issuer: string): Promise<string> {
  let endpoint = endpoints.get(issuer);
  if (!endpoint) {
    endpoint = fetch(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`)
      .then((r) => r.json() as Promise<{ token_endpoint?: string }>)
      .then((d) => {
        if (typeof d.token_endpoint !== 'string') throw new Error(`${issuer} names no token_endpoint`);
        return d.token_endpoint;
      });
    endpoint.catch(() => endpoints.delete(issuer));
    endpoints.set(issuer, endpoint);
  }
  return endpoint;
}

/** Asks an OpenID provider's token endpoint (found by discovery) for an access token; throws with the provider's error. */
async function tokenRequest(
  issuer: string,
  client: string,
  secret: string,
  form: Record<string, string>,
): Promise<{ token: string; expiresIn: number }> {
  const endpoint = await tokenEndpoint(issuer);
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(client)}:${encodeURIComponent(secret)}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams(form),
  });
  const body = (await response.json()) as { access_token?: string; expires_in?: number; error?: string; error_description?: string };
  if (!response.ok || !body.access_token)
    throw new Error(`the token endpoint answered ${response.status}: ${body.error ?? ''} ${body.error_description ?? ''}`.trim());
  return { token: body.access_token, expiresIn: body.expires_in ?? 0 };
}

/** A user's token from the development IdP (its dev-user grant). */
export function devUserToken(issuer: string, secret: string, user: DevUserToken): Promise<{ token: string; expiresIn: number }> {
  return tokenRequest(issuer, DEV_CLIENT, secret, {
    grant_type: DEV_USER_GRANT,
    sub: user.sub,
    ...(user.roles?.length ? { roles: user.roles.join(' ') } : {}),
    ...(user.grants?.length ? { grants: user.grants.join(' ') } : {}),
    ttl: String(user.ttlSeconds ?? 600),
    ...(user.channel ? { channel: user.channel } : {}),
  });
}

/** A backend's token (client credentials): `sub` is the client's id. */
export function backendToken(issuer: string, secret: string): Promise<{ token: string; expiresIn: number }> {
  return tokenRequest(issuer, BACKEND_CLIENT, secret, { grant_type: 'client_credentials' });
}
