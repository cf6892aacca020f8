import * as oauth from 'oauth4webapi';
import type { PageSignIn } from './config';

/**
 * Sign-in for the page: the authorization code flow with PKCE at the topology's OpenID provider,
 * through panva's oauth4webapi. The page is a public client (no secret); the verifier and state
 * wait in sessionStorage across the redirect, and tokens live in memory only.
 */

const PENDING = 'ws-page.pkce';

export interface Session {
  readonly sub: string;
  /** A fresh access token: the refresh token's, or a new sign-in when there is none. */
  token(): Promise<string>;
}

/** Finishes a sign-in the provider redirected back with, or starts one (the page navigates away). */
export async function signIn(config: PageSignIn): Promise<Session | undefined> {
  const issuer = new URL(config.issuer);
  // Where the browser reaches the provider: its issuer, or a path on the page's own origin (a
  // deployment's development IdP, through the proxy). The document must still name the issuer.
  const reached = config.via ? new URL(config.via, location.origin) : issuer;
  // The development IdP answers on plain HTTP on loopback; a real provider is HTTPS.
  const options = { [oauth.allowInsecureRequests]: reached.protocol === 'http:' };
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(reached, options));
  const client: oauth.Client = { client_id: config.clientId };
  const redirectUri = `${location.origin}${location.pathname}`;
  const here = new URL(location.href);
  const pending = sessionStorage.getItem(PENDING);
  if (!here.searchParams.has('code') || !pending) {
    await redirect(as, config, redirectUri);
    return undefined;
  }
  sessionStorage.removeItem(PENDING);
  const { verifier, state, search } = JSON.parse(pending) as { verifier: string; state: string; search: string };
  const params = oauth.validateAuthResponse(as, client, here, state);
  history.replaceState(null, '', `${redirectUri}${search}`);
  const response = await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, redirectUri, verifier, options);
  let tokens = await oauth.processAuthorizationCodeResponse(as, client, response);
  const sub = String(oauth.getValidatedIdTokenClaims(tokens)?.sub ?? '');
  let used = false;
  return {
    sub,
    async token() {
      // The first call takes the token just issued; later ones (the SDK's refreshes) a new one.
      if (!used) {
        used = true;
        return tokens.access_token;
      }
      if (!tokens.refresh_token) throw new Error('the provider issued no refresh token: sign in again');
      const refreshed = await oauth.refreshTokenGrantRequest(as, client, oauth.None(), tokens.refresh_token, options);
      tokens = await oauth.processRefreshTokenResponse(as, client, refreshed);
      return tokens.access_token;
    },
  };
}

async function redirect(as: oauth.AuthorizationServer, config: PageSignIn, redirectUri: string): Promise<void> {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  // The page's own query (its ?topics=) comes back after the sign-in.
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, search: location.search }));
  const url = new URL(as.authorization_endpoint!);
  url.search = new URLSearchParams({
    client_id: config.clientId,
    redirect_uri: redirectUri,
    response_type: 'code',
    scope: config.scope,
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  }).toString();
  location.assign(url.toString());
}
