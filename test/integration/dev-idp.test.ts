import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { DevIdp } from '../../app/src/idp/dev-idp';
import { PAGE_CLIENT } from '../../app/src/idp/clients';
import { DEV_IDP } from '../../app/src/topology';
import { freePort } from '../../local/processes';
import { TEST_IDP_SECRET } from '../helpers/idp';

/** What nginx's DEV_IDP.proxyPath location adds (nginx/render.ts), for a page served at PAGE. */
const PAGE = 'https://localhost:18443';
type Discovery = Record<'issuer' | 'authorization_endpoint' | 'token_endpoint' | 'jwks_uri', string>;
const discover = async (url: string, headers: Record<string, string> = {}) => (await (await fetch(url, { headers })).json()) as Discovery;
const FORWARDED = { 'x-forwarded-proto': 'https', 'x-forwarded-host': new URL(PAGE).host };

describe('the development IdP behind the proxy (DEV_IDP.proxyPath): the URLs it hands a browser lead back through the proxy', () => {
  let idp: DevIdp;
  let base: string;
  before(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    idp = new DevIdp({ issuer: base, clientSecret: TEST_IDP_SECRET, pageOrigins: [PAGE] });
    await idp.listen(port, '127.0.0.1');
  });
  after(() => idp.close());

  it('discovery through the proxy names the same issuer and endpoints on the page’s origin; on the service network, its own', async () => {
    const proxied = await discover(`${base}${DEV_IDP.proxyPath}/.well-known/openid-configuration`, FORWARDED);
    assert.equal(proxied.issuer, base, 'the issuer the tokens carry and the replicas check');
    for (const endpoint of ['authorization_endpoint', 'token_endpoint', 'jwks_uri'] as const)
      assert.ok(proxied[endpoint].startsWith(`${PAGE}${DEV_IDP.proxyPath}/`), `${endpoint}: ${proxied[endpoint]}`);
    const direct = await discover(`${base}/.well-known/openid-configuration`);
    assert.equal(direct.issuer, base);
    assert.ok(direct.token_endpoint.startsWith(`${base}/`), direct.token_endpoint);
  });

  it('the sign-in’s login form and its cookie are under the proxied path', async () => {
    const verifier = randomBytes(32).toString('base64url');
    const query = new URLSearchParams({
      client_id: PAGE_CLIENT,
      response_type: 'code',
      redirect_uri: `${PAGE}/`,
      scope: 'openid notify',
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    });
    const response = await fetch(`${base}${DEV_IDP.proxyPath}/auth?${query}`, { headers: FORWARDED, redirect: 'manual' });
    assert.equal(response.status, 303, await response.text());
    const login = response.headers.get('location')!;
    assert.match(login, new RegExp(`^${DEV_IDP.proxyPath}/interaction/[\\w-]+$`), 'the login form, through the proxy');
    const cookies = response.headers.getSetCookie();
    assert.ok(
      cookies.some((c) => c.includes(`path=${login}`) && /secure/i.test(c)),
      `the interaction cookie is for that path, secure: ${cookies.join(' | ')}`,
    );
    const form = await fetch(`${base}${login}`, { headers: { ...FORWARDED, cookie: cookies.map((c) => c.split(';')[0]).join('; ') } });
    assert.equal(form.status, 200);
    assert.match(
      await form.text(),
      new RegExp(`action="${PAGE}${DEV_IDP.proxyPath}/interaction/`),
      'the form posts back through the proxy',
    );
  });
});
