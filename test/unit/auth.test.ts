import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { permissionsFor } from '../../app/src/server/auth/grants';
import { parseRevocation, RevocationList } from '../../app/src/server/auth/revocations';
import { algorithmFor } from '../../app/src/server/auth/verifier';
import { ConfigError } from '../../app/src/shared/errors';
import { APP_CLOSE_CODES } from '../../app/src/shared/protocol';
import { idpSettingsFromEnv } from '../../app/src/idp/settings';
import {
  authSchema,
  DEV_AUDIENCE,
  DEV_GRANTS,
  DEV_IDP_ISSUER,
  defineTopology,
  fromAuthEnv,
  toAuthEnv,
  type TopologyInput,
  usesDevelopmentIdp,
} from '../../app/src/topology';

const auth = (input: Record<string, unknown>) => authSchema.parse({ mode: 'jwt', issuer: 'https://idp.example/realms/acme', ...input });

describe('auth grants', () => {
  const config = auth({
    grants: [
      { claim: 'realm_access.roles', role: 'notify-reader', topics: ['news.*'], allow: ['subscribe'] },
      { claim: 'editor', topics: ['news.>'], allow: ['publish'] },
      { topics: ['user.{sub}.>'], allow: ['subscribe', 'publish'] },
    ],
    anonymous: ['public.status'],
  });

  it('maps a Keycloak-shaped token to its topics: roles, claims, its own subject', () => {
    const p = permissionsFor({ sub: 'alice', realm_access: { roles: ['notify-reader'] } }, config);
    assert.ok(p.allows('subscribe', 'news.sport'));
    assert.ok(!p.allows('subscribe', 'news.sport.live'), '* is one name');
    assert.ok(!p.allows('publish', 'news.sport'), 'no editor claim');
    assert.ok(p.allows('subscribe', 'user.alice.inbox') && p.allows('publish', 'user.alice.a.b'));
    assert.ok(!p.allows('subscribe', 'user.alice'), '> needs at least one name');
    assert.ok(!p.allows('subscribe', 'user.bob.inbox'), "another user's topic");
    assert.ok(p.allows('subscribe', 'public.status') && !p.allows('publish', 'public.status'), 'anonymous topics: subscribe only');

    const editor = permissionsFor({ sub: 'ed', editor: true }, config);
    assert.ok(editor.allows('publish', 'news.a.b.c') && !editor.allows('subscribe', 'news.a'));
    assert.ok(!permissionsFor({ sub: 'ed', editor: false }, config).allows('publish', 'news.a'), 'a false claim grants nothing');
    assert.ok(
      permissionsFor({ sub: 'r', realm_access: { roles: 'notify-reader' } }, config).allows('subscribe', 'news.x'),
      'a claim equal to the role',
    );
  });

  it('a subject that cannot stand in a topic name matches no {sub} pattern', () => {
    for (const sub of ['a.b', 'alice bob', '', '*', '>'])
      assert.ok(!permissionsFor({ sub }, config).allows('subscribe', `user.${sub}.x`), JSON.stringify(sub));
    assert.ok(!permissionsFor(undefined, config).allows('subscribe', 'user.x.y'), 'anonymous');
  });

  it("takes the token's own grants, skipping malformed ones", () => {
    const p = permissionsFor(
      { sub: 'bot', notify_grants: ['alerts.*:subscribe,publish', 'ops.>:delete', 'bad pattern:subscribe', 'a.>.b:publish', 42] },
      config,
    );
    assert.ok(p.allows('publish', 'alerts.eu') && p.allows('subscribe', 'alerts.us'));
    assert.ok(!p.allows('subscribe', 'ops.x') && !p.allows('publish', 'a.x.b'));
  });

  it('a pattern built from a topic by replacing names with * (or a tail with >) matches it, and only topics of its shape', () => {
    const name = fc.stringMatching(/^[a-z0-9]{1,6}$/);
    fc.assert(
      fc.property(
        fc.array(name, { minLength: 1, maxLength: 5 }),
        fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
        fc.nat(5),
        (names, stars, tail) => {
          const pattern = names.map((n, i) => (stars[i] ? '*' : n));
          const cut = Math.min(tail, names.length - 1);
          const withTail = cut > 0 ? [...pattern.slice(0, names.length - cut), '>'] : pattern;
          const p = permissionsFor({ sub: 's', notify_grants: [`${withTail.join('.')}:subscribe`] }, authSchema.parse({ mode: 'none' }));
          return p.allows('subscribe', names.join('.')) && !p.allows('subscribe', [...names, 'extra'].join('.')) === (cut === 0);
        },
      ),
    );
  });
});

describe('auth topology validation', () => {
  function refused(input: Record<string, unknown>, field: string, rule: RegExp, rest: Partial<TopologyInput> = {}) {
    assert.throws(
      () => defineTopology({ ...rest, auth: input } as Partial<TopologyInput>),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        const problem = error.problems.find((p) => p.field === field);
        assert.ok(problem, `expected a problem on ${field}, got: ${error.message}`);
        assert.match(problem.rule, rule);
        return true;
      },
    );
  }

  it('refuses what cannot work, naming the field', () => {
    refused({ mode: 'jwt', issuer: 'not a url' }, 'auth.issuer', /URL/i);
    refused({ mode: 'jwt', issuer: 'https://idp', algorithms: ['HS256'] }, 'auth.algorithms.0', /RS256/);
    refused(
      { mode: 'jwt', issuer: 'https://idp', grants: [{ topics: ['news..x'], allow: ['subscribe'] }] },
      'auth.grants.0.topics.0',
      /topic pattern/,
    );
    refused(
      { mode: 'jwt', issuer: 'https://idp', grants: [{ topics: ['a.>.b'], allow: ['subscribe'] }] },
      'auth.grants.0.topics.0',
      /topic pattern/,
    );
    refused(
      { mode: 'jwt', issuer: 'https://idp', grants: [{ role: 'x', topics: ['a'], allow: ['subscribe'] }] },
      'auth.grants.0.role',
      /claim/,
    );
    refused({ mode: 'jwt', issuer: 'https://idp', grants: [{ topics: ['a'], allow: ['delete'] }] }, 'auth.grants.0.allow.0', /subscribe/);
    refused({ mode: 'jwt', issuer: 'https://idp', anonymous: ['user.{sub}.x'] }, 'auth.anonymous.0', /no subject/);
    refused({ mode: 'oauth' }, 'auth.mode', /jwt/);
  });

  it('is jwt against the development IdP when left out: secure by default', () => {
    for (const t of [defineTopology(), defineTopology({ auth: {} } as Partial<TopologyInput>)]) {
      assert.equal(t.auth.mode, 'jwt');
      assert.ok(usesDevelopmentIdp(t.auth));
      assert.deepEqual(t.auth.grants, DEV_GRANTS);
      assert.equal(t.server.clientPublish, false);
    }
    assert.throws(() => defineTopology({ target: 'swarm' }), /auth\.issuer: the swarm target runs no development IdP/);
  });

  it('lets clients publish with auth off only through server.clientPublish, and refuses a load job that would be refused', () => {
    const open = { mode: 'none' } as const;
    const quiet = { publishRate: 0 } as TopologyInput['load'];
    assert.equal(defineTopology({ auth: open, load: quiet }).server.clientPublish, false);
    assert.equal(defineTopology({ auth: open, server: { clientPublish: true } as TopologyInput['server'] }).server.clientPublish, true);
    refused(open, 'server.clientPublish', /load job publishes over the WebSocket.*set it, publish through the API \(load\.publishApi\)/);
    // Through the API, as a backend: the WebSocket stays closed to publishers.
    const keyFile = '/run/secrets/api-key';
    const viaApi = { publishApi: { keyFile } } as TopologyInput['load'];
    refused(open, 'load.publishApi', /set proxy\.publishApi/, { load: viaApi });
    const backend = defineTopology({
      auth: open,
      server: { apiKeyFile: keyFile } as TopologyInput['server'],
      proxy: { publishApi: true } as TopologyInput['proxy'],
      load: viaApi,
    });
    assert.deepEqual([backend.server.clientPublish, backend.load.publishApi], [false, { keyFile }]);
    refused({ mode: 'jwt' }, 'server.clientPublish', /only with auth\.mode none/, {
      server: { clientPublish: true } as TopologyInput['server'],
    });
  });

  it('jwt without a provider means the development IdP: on the engine target, never on swarm', () => {
    const { auth } = defineTopology({ auth: { mode: 'jwt', anonymous: ['status'] } });
    assert.ok(usesDevelopmentIdp(auth));
    assert.deepEqual([auth.issuer, auth.audience, auth.grants, auth.anonymous], [DEV_IDP_ISSUER, DEV_AUDIENCE, DEV_GRANTS, ['status']]);
    const own = [{ topics: ['a'], allow: ['subscribe' as const] }];
    assert.deepEqual(defineTopology({ auth: { mode: 'jwt', grants: own } }).auth.grants, own, "the topology's grants stay");
    assert.ok(!usesDevelopmentIdp(defineTopology({ auth: { mode: 'jwt', issuer: 'https://idp' } }).auth));
    assert.throws(
      () => defineTopology({ target: 'swarm', auth: { mode: 'jwt' } }),
      /auth\.issuer: the swarm target runs no development IdP/,
    );
    assert.throws(() => authSchema.parse({ mode: 'jwt' }), /needs the provider/, 'a replica is never left to guess');
  });

  it('travels to the replicas as variables and back unchanged', () => {
    const config = auth({
      audience: 'ws',
      grants: [{ claim: 'realm_access.roles', role: 'r', topics: ['news.*', 'user.{sub}.>'], allow: ['subscribe'] }],
      anonymous: ['public.a', 'public.b'],
    });
    assert.deepEqual(fromAuthEnv(toAuthEnv(config)), config);
    assert.deepEqual(toAuthEnv(authSchema.parse({ mode: 'none' })), { WS_AUTH_MODE: 'none' });
    assert.throws(() => fromAuthEnv({}), /WS_AUTH_ISSUER/, 'a replica told nothing is not left open');
    assert.throws(() => fromAuthEnv({ WS_AUTH_MODE: 'jwt' }), /WS_AUTH_ISSUER/);
    assert.throws(
      () => fromAuthEnv({ WS_AUTH_MODE: 'jwt', WS_AUTH_ISSUER: 'https://idp', WS_AUTH_GRANTS: '[{"topics":[]}]' }),
      /WS_AUTH_GRANTS/,
    );
  });
});

describe("a provider's key and the algorithm it is readied for", () => {
  const accepted = ['RS256', 'PS256', 'ES256', 'EdDSA'];
  it("takes the key's own alg when accepted, else one its type and curve allow, else none", () => {
    assert.equal(algorithmFor({ kty: 'RSA', alg: 'PS256' }, accepted), 'PS256');
    assert.equal(algorithmFor({ kty: 'RSA', alg: 'RS512' }, accepted), undefined, 'its own alg is not accepted');
    assert.equal(algorithmFor({ kty: 'RSA' }, accepted), 'RS256');
    assert.equal(algorithmFor({ kty: 'RSA' }, ['ES256', 'PS384']), 'PS384');
    assert.equal(algorithmFor({ kty: 'EC', crv: 'P-256' }, accepted), 'ES256');
    assert.equal(algorithmFor({ kty: 'EC', crv: 'P-384' }, accepted), undefined, 'ES384 is not accepted');
    assert.equal(algorithmFor({ kty: 'EC', crv: 'P-384' }, ['ES384']), 'ES384');
    assert.equal(algorithmFor({ kty: 'OKP', crv: 'Ed25519' }, accepted), 'EdDSA');
    assert.equal(algorithmFor({ kty: 'oct' }, accepted), undefined, 'a shared secret is never a verification key');
  });
});

describe('revocations', () => {
  it("close a subject's connections authenticated by then, whatever the token's iat; refuse earlier tokens later", () => {
    const list = new RevocationList();
    const at = 1_800_000_000_500;
    const second = Math.floor(at / 1000);
    list.add({ sub: 'alice', before: second, at });
    const sameSecond = { sub: 'alice', issuedAt: second };
    assert.ok(list.revokes(sameSecond, at - 100), 'refreshed in the same second, before the revocation: closed');
    assert.ok(!list.revokes(sameSecond, at + 100), 'taken after the revocation: stays');
    assert.ok(!list.revokes(sameSecond), 'a later connect with a token of that second is taken');
    assert.ok(list.revokes({ sub: 'alice', issuedAt: second - 1 }), 'an earlier token is refused');
    assert.ok(!list.revokes({ sub: 'bob', issuedAt: 0 }, 0), 'other subjects are untouched');
    list.add({ jti: 't-1', until: Math.floor(Date.now() / 1000) + 60 });
    assert.ok(list.revokes({ sub: 'bob', issuedAt: 0, jti: 't-1' }) && !list.revokes({ sub: 'bob', issuedAt: 0, jti: 't-2' }));
    assert.deepEqual(parseRevocation({ sub: 'alice', before: 1 }), undefined, 'a subject revocation needs its time');
  });
});

describe('close codes', () => {
  it("the README's table lists every application close code, with its reconnect advice", () => {
    const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
    const rows = [...readme.matchAll(/^\| (4\d{3}) \|[^|]*\| ([^|]*?) *\|$/gm)].map((m) => [Number(m[1]), !m[2].startsWith('do not')]);
    const table = Object.values(APP_CLOSE_CODES).map((c) => [c.code, c.reconnect]);
    assert.deepEqual(rows.sort(), table.sort());
    for (const { code, reconnect } of Object.values(APP_CLOSE_CODES))
      assert.equal(reconnect, code < 4500, `${code} is in its half of the range`);
  });
});

describe('the development IdP reads its settings from IDP_ENV', () => {
  it('takes the defaults, and names the variable of a bad or missing value', () => {
    const settings = idpSettingsFromEnv({ WS_IDP_ISSUER: 'http://ws-idp:8090', WS_IDP_SECRET_FILE: '/run/secrets/idp-secret' });
    assert.deepEqual([settings.port, settings.host, settings.tokenTtlSeconds], [8090, '0.0.0.0', 600]);
    const fields = (env: Record<string, string>) => {
      try {
        idpSettingsFromEnv(env);
      } catch (error) {
        assert.ok(error instanceof ConfigError);
        return error.problems.map((p) => p.field).sort();
      }
      return [];
    };
    assert.deepEqual(fields({}), ['WS_IDP_ISSUER', 'WS_IDP_SECRET_FILE']);
    assert.deepEqual(fields({ WS_IDP_ISSUER: 'not a url', WS_IDP_SECRET_FILE: 'f', WS_IDP_PORT: '70000', WS_IDP_TOKEN_TTL_S: '1.5' }), [
      'WS_IDP_ISSUER',
      'WS_IDP_PORT',
      'WS_IDP_TOKEN_TTL_S',
    ]);
  });
});
