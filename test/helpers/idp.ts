import { DevIdp } from '../../app/src/idp/dev-idp';
import { freePort } from '../../local/processes';
import { devUserToken, type DevUserToken } from '../../app/src/idp/tokens';

export const TEST_IDP_SECRET = 'test-idp-secret-0123456789abcdef';

export interface RunningIdp {
  readonly idp: DevIdp;
  readonly issuer: string;
  /** A user's token, signed by the provider's current key. */
  token(user: DevUserToken): Promise<string>;
  stop(): Promise<void>;
}

/** The real development OpenID provider (oidc-provider) on an ephemeral loopback port. */
export async function startIdp(): Promise<RunningIdp> {
  // The issuer names the port, which is known only once bound: reserve one first.
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const idp = new DevIdp({ issuer, clientSecret: TEST_IDP_SECRET });
  await idp.listen(port, '127.0.0.1');
  return {
    idp,
    issuer,
    token: async (user) => (await devUserToken(issuer, TEST_IDP_SECRET, user)).token,
    stop: () => idp.close(),
  };
}
