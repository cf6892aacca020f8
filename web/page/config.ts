/**
 * What the notification page reads from /config.json: rendered from the topology (web/build.ts),
 * so the page and the deployment agree on the path, the topics and the sign-in.
 */
export interface PageConfig {
  /** Where the replicas speak Centrifugo's protocol, on the page's own origin. */
  readonly centrifugePath: string;
  /** Topics the page subscribes to; `{sub}` stands for the signed-in user. `?topics=a,b` overrides them. */
  readonly topics: readonly string[];
  readonly auth: { readonly mode: 'none' } | PageSignIn;
}

/** Sign-in with the authorization code flow and PKCE (RFC 7636) at an OpenID provider. */
export interface PageSignIn {
  readonly mode: 'jwt';
  readonly issuer: string;
  /**
   * A path on the page's own origin where the browser reaches the provider, when its issuer is a
   * name only the service network resolves (the engine stack's development IdP, DEV_IDP.proxyPath).
   * @default the issuer itself
   */
  readonly via?: string;
  /** A public client: no secret in a page. */
  readonly clientId: string;
  readonly scope: string;
}
