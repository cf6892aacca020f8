import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { base64url, exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK } from 'jose';
import { authSchema, type AuthConfig } from '../../app/src/topology';
import { CloseCode, PUBLISH_API_PATH, REVOKE_API_PATH, type ServerMessage } from '../../app/src/shared/protocol';
import { backendToken } from '../../app/src/idp/tokens';
import { ROTATE_KEYS_PATH } from '../../app/src/idp/clients';
import { SIGNING_ALG } from '../../app/src/idp/provider';
import { TokenVerifier } from '../../app/src/server/auth/verifier';
import { startIdp, TEST_IDP_SECRET, type RunningIdp } from '../helpers/idp';
import { brokerReplica, startNats } from '../helpers/nats';
import { eventually, metricValue, startServer, TestClient, type RunningServer } from '../helpers/server';

/** What the tests' topology grants: readers get news, everyone their own user topics. */
function authFor(idp: { issuer: string }, extra: Partial<AuthConfig> = {}): AuthConfig {
  return authSchema.parse({
    mode: 'jwt',
    issuer: idp.issuer,
    audience: 'ws-notifications',
    clockSkewMs: 0,
    grants: [
      { claim: 'realm_access.roles', role: 'notify-reader', topics: ['news.*'], allow: ['subscribe'] },
      { topics: ['user.{sub}.>'], allow: ['subscribe', 'publish'] },
    ],
    ...extra,
  });
}

/** Opens, sends `connect` with the token, and resolves with the client once hello came or the connection closed. */
async function connectWith(server: RunningServer, token: string | undefined): Promise<TestClient> {
  const client = await TestClient.open(server.url);
  client.send(token === undefined ? { type: 'connect' } : { type: 'connect', token });
  await Promise.race([client.next('hello', 8000), client.closed]);
  return client;
}

/** The close a refused token gets, and that the failure was counted under its reason. */
async function refused(server: RunningServer, token: string | undefined, code: number, reason: string): Promise<void> {
  const before = await metricValue(server.metrics.authFailures, { reason });
  const client = await connectWith(server, token);
  const closed = await within(client.closed, 10_000, 'client closed');
  assert.equal(closed.code, code, `close code for ${reason} (got reason "${closed.reason}")`);
  assert.match(closed.reason, new RegExp(`^${reason}`));
  assert.equal(client.messages.filter((m) => m.type === 'hello').length, 0, 'no hello for a refused token');
  assert.equal(await metricValue(server.metrics.authFailures, { reason }), before + 1, `counted as ${reason}`);
}

/** A token shaped by hand: header and claims as given, signed (or not) as given. */
function handMade(header: object, claims: object, signature = ''): string {
  const part = (o: object) => base64url.encode(JSON.stringify(o));
  return `${part(header)}.${part(claims)}.${signature}`;
}

describe('auth: OIDC tokens from a real provider, grants, expiry (oidc-provider over HTTP)', () => {
  let idp: RunningIdp;
  let server: RunningServer;
  /** Connected before any bad input, checked after: nothing refused elsewhere touches it. */
  let bystander: TestClient;
  const now = () => Math.floor(Date.now() / 1000);

  before(async () => {
    idp = await startIdp();
    server = await startServer({}, 'auth-0', { auth: authFor(idp) });
    bystander = await connectWith(server, await idp.token({ sub: 'carol', roles: ['notify-reader'] }));
    bystander.send({ type: 'subscribe', topic: 'news.world' });
    await bystander.next('subscribed');
  });
  after(async () => {
    bystander?.close();
    await server?.stop();
    await idp?.stop();
  });

  it('a valid token: hello names the subject; grants decide subscribe and publish, a denial keeps the connection', async () => {
    const alice = await connectWith(server, await idp.token({ sub: 'alice', roles: ['notify-reader'], ttlSeconds: 300 }));
    const hello = helloOf(alice);
    assert.equal(hello.sub, 'alice');
    assert.ok(hello.expiresAt! > Date.now() + 250_000 && hello.expiresAt! <= Date.now() + 300_000, 'expiresAt is the token exp');
    alice.send({ type: 'subscribe', topic: 'news.sport' });
    assert.equal((await alice.next('subscribed')).topic, 'news.sport');
    alice.send({ type: 'subscribe', topic: 'user.alice.inbox' });
    assert.equal((await alice.next('subscribed')).topic, 'user.alice.inbox');
    // Another user's private topic, a topic with no grant, a publish without a grant.
    for (const topic of ['user.bob.inbox', 'billing.invoices']) {
      alice.send({ type: 'subscribe', topic });
      const error = await alice.next('error');
      assert.deepEqual([error.code, error.topic], ['forbidden', topic]);
    }
    alice.send({ type: 'publish', topic: 'news.sport', data: 'forged', id: 'p-1' });
    const denied = await alice.next('error');
    assert.deepEqual([denied.code, denied.topic, denied.id], ['forbidden', 'news.sport', 'p-1']);
    assert.equal(await metricValue(server.metrics.authDenials, { action: 'subscribe' }), 2);
    assert.equal(await metricValue(server.metrics.authDenials, { action: 'publish' }), 1);
    // Still open and still served: its own topic takes a publish.
    alice.send({ type: 'publish', topic: 'user.alice.inbox', data: 'note to self' });
    assert.equal((await alice.next('notification')).data, 'note to self');
    alice.close();
  });

  it('grants listed in the token itself (notify_grants) hold; a token without roles gets only its own topics', async () => {
    const bob = await connectWith(server, await idp.token({ sub: 'bob', grants: ['alerts.>:subscribe,publish'] }));
    bob.send({ type: 'subscribe', topic: 'alerts.eu.fire' });
    assert.equal((await bob.next('subscribed')).topic, 'alerts.eu.fire');
    bob.send({ type: 'subscribe', topic: 'news.world' });
    assert.equal((await bob.next('error')).code, 'forbidden', 'no notify-reader role: no news');
    bob.close();
  });

  it("a token in the upgrade's Authorization header: hello with no connect; a refused one closes as in connect; connect after it is 4502", async () => {
    const header = (authorization: string) => ({ headers: { authorization } });
    const alice = await TestClient.open(server.url, header(`Bearer ${await idp.token({ sub: 'alice', roles: ['notify-reader'] })}`));
    assert.equal((await alice.next('hello', 5000)).sub, 'alice', 'hello follows the 101, no connect sent');
    alice.send({ type: 'subscribe', topic: 'news.world' });
    assert.equal((await alice.next('subscribed')).topic, 'news.world', "the header's token brought its grants");
    alice.send({ type: 'connect', token: await idp.token({ sub: 'alice' }) });
    assert.equal((await within(alice.closed, 10_000, 'alice closed')).code, CloseCode.badRequest, "a connect after the header's token");

    // A tampered payload under the provider's own signature, in the header: refused as in connect, counted.
    const [h, p, sig] = (await idp.token({ sub: 'mallory' })).split('.');
    const tampered = `${h}.${base64url.encode(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), sub: 'alice' }))}.${sig}`;
    const before = await metricValue(server.metrics.authFailures, { reason: 'signature' });
    const mallory = await TestClient.open(server.url, header(`bearer ${tampered}`));
    const closed = await within(mallory.closed, 10_000, 'mallory closed');
    assert.equal(closed.code, CloseCode.invalidToken);
    assert.match(closed.reason, /^signature/);
    assert.equal(mallory.messages.filter((m) => m.type === 'hello').length, 0, 'no hello for a refused header token');
    assert.equal(await metricValue(server.metrics.authFailures, { reason: 'signature' }), before + 1);

    // A header that is not a bearer token is no token: the connection waits for its connect.
    const dora = await TestClient.open(server.url, header('Basic ZG9yYTpwdw=='));
    dora.send({ type: 'connect', token: await idp.token({ sub: 'dora' }) });
    assert.equal((await dora.next('hello', 5000)).sub, 'dora');
    dora.close();
  });

  it('refuses bad tokens with their codes, counted by reason, the replica and other connections untouched', async () => {
    const { privateKey: stranger } = await generateKeyPair(SIGNING_ALG);
    const claims = { sub: 'mallory', iss: idp.issuer, aud: 'ws-notifications', exp: now() + 300, iat: now() };
    const good = await idp.token({ sub: 'mallory', ttlSeconds: 300 });
    const [h, p, sig] = good.split('.');
    // The provider's public key, as an attacker would take it from the JWKS.
    const jwks = (await (await fetch(`${idp.issuer}/jwks`)).json()) as { keys: JWK[] };
    const kid = JSON.parse(Buffer.from(h, 'base64url').toString()).kid as string;
    const publicJwk = jwks.keys.find((k) => k.kid === kid)!;
    const { importJWK } = await import('jose');
    const publicPem = await exportSPKI((await importJWK(publicJwk, SIGNING_ALG)) as Parameters<typeof exportSPKI>[0]);

    await refused(server, undefined, CloseCode.invalidToken, 'missing');
    await refused(server, 'not-a-jwt', CloseCode.invalidToken, 'malformed');
    await refused(server, handMade({ alg: 'none', typ: 'JWT' }, claims), CloseCode.invalidToken, 'algorithm');
    // Algorithm confusion: HS256 keyed with the provider's public key.
    const confused = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid }).sign(new TextEncoder().encode(publicPem));
    await refused(server, confused, CloseCode.invalidToken, 'algorithm');
    // A tampered payload under the provider's own signature.
    const tampered = `${h}.${base64url.encode(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), sub: 'alice' }))}.${sig}`;
    await refused(server, tampered, CloseCode.invalidToken, 'signature');
    const unknownKid = await new SignJWT(claims).setProtectedHeader({ alg: SIGNING_ALG, kid: 'not-in-the-jwks' }).sign(stranger);
    await refused(server, unknownKid, CloseCode.invalidToken, 'unknown_key');
    // Signed by a stranger's key under the provider's kid.
    const forged = await new SignJWT(claims).setProtectedHeader({ alg: SIGNING_ALG, kid }).sign(stranger);
    await refused(server, forged, CloseCode.invalidToken, 'signature');
    await refused(server, 'x'.repeat(60 * 1024), CloseCode.invalidToken, 'too_large');

    const expired = await idp.token({ sub: 'mallory', ttlSeconds: 1 });
    const exp = JSON.parse(Buffer.from(expired.split('.')[1], 'base64url').toString()).exp as number;
    await eventually(() => now() > exp, 3000, 'the token expired');
    await refused(server, expired, CloseCode.invalidToken, 'expired');

    // The wrong audience and the wrong issuer: servers that expect others, same provider and keys.
    const otherAudience = await startServer({}, 'auth-aud', { auth: authFor(idp, { audience: 'another-service' }) });
    const otherIssuer = await startServer({}, 'auth-iss', {
      auth: authFor(idp, { issuer: 'https://login.example.org/realms/other', jwksUri: `${idp.issuer}/jwks` }),
    });
    try {
      await refused(otherAudience, good, CloseCode.invalidToken, 'audience');
      await refused(otherIssuer, good, CloseCode.invalidToken, 'issuer');
    } finally {
      await Promise.all([otherAudience.stop(), otherIssuer.stop()]);
    }

    // Out of order: a subscribe before connect, and silence past the connect timeout.
    const early = await TestClient.open(server.url);
    early.send({ type: 'subscribe', topic: 'news.world' });
    assert.equal((await within(early.closed, 10_000, 'early closed')).code, CloseCode.badRequest);

    // The replica is up, and the bystander still gets its topic.
    const publisher = await connectWith(server, await idp.token({ sub: 'desk', grants: ['news.*:publish'] }));
    publisher.send({ type: 'publish', topic: 'news.world', data: 'still here' });
    assert.equal((await bystander.next('notification', 5000)).data, 'still here');
    publisher.close();
  });

  it('a key rotation: new tokens verify without a refetch, tokens signed before stay valid, nothing is closed', async () => {
    const kidOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString()).kid as string;
    const before = await idp.token({ sub: 'olga', ttlSeconds: 300 });
    const olga = await connectWith(server, before);
    const fetches = await metricValue(server.metrics.jwksFetches, { result: 'ok' });
    const rotated = await fetch(`${idp.issuer}${ROTATE_KEYS_PATH}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_IDP_SECRET}` },
    });
    const { kid } = (await rotated.json()) as { kid: string };
    const after = await idp.token({ sub: 'pat', ttlSeconds: 300 });
    assert.equal(kidOf(after), kid, 'the new key signs');
    assert.notEqual(kid, kidOf(before));
    assert.equal(helloOf(await connectWith(server, after)).sub, 'pat');
    assert.equal(helloOf(await connectWith(server, before)).sub, 'olga', 'a token signed before the rotation still verifies');
    assert.equal(await metricValue(server.metrics.jwksFetches, { result: 'ok' }), fetches, 'the new key was published ahead: no refetch');
    assert.equal(olga.ws.readyState, olga.ws.OPEN);
    const unauthorized = await fetch(`${idp.issuer}${ROTATE_KEYS_PATH}`, { method: 'POST' });
    assert.equal(unauthorized.status, 401);
  });

  it('closes a connection that sends no connect in time (4001)', async () => {
    const quick = await startServer({}, 'auth-quick', { auth: authFor(idp, { connectTimeoutMs: 300 }) });
    try {
      const silent = await TestClient.open(quick.url);
      const closed = await within(silent.closed, 10_000, 'silent closed');
      assert.equal(closed.code, CloseCode.authTimeout);
      assert.equal(await metricValue(quick.metrics.authFailures, { reason: 'connect_timeout' }), 1);
    } finally {
      await quick.stop();
    }
  });

  it('warns before exp, takes a refresh for the same subject, refuses another subject, closes an unrefreshed one with 4005', async () => {
    const short = await startServer({}, 'auth-exp', { auth: authFor(idp, { refreshAheadMs: 1500, expiryGraceMs: 500 }) });
    try {
      const dave = await connectWith(short, await idp.token({ sub: 'dave', ttlSeconds: 3 }));
      const warned = await dave.next('expiring', 5000);
      assert.ok(warned.expiresAt - Date.now() <= 1600, 'warned within refreshAheadMs of exp');
      dave.send({ type: 'refresh', token: await idp.token({ sub: 'dave', ttlSeconds: 300 }) });
      const refreshed = await dave.next('refreshed');
      assert.ok(refreshed.expiresAt > Date.now() + 250_000);
      assert.equal(await metricValue(short.metrics.authRefreshes), 1);

      const erin = await connectWith(short, await idp.token({ sub: 'erin', ttlSeconds: 300 }));
      erin.send({ type: 'refresh', token: await idp.token({ sub: 'mallory', ttlSeconds: 300 }) });
      const swapped = await within(erin.closed, 10_000, 'erin closed');
      assert.deepEqual([swapped.code, swapped.reason.split(':')[0]], [CloseCode.invalidToken, 'subject_changed']);

      const frank = await connectWith(short, await idp.token({ sub: 'frank', ttlSeconds: 2 }));
      await frank.next('expiring', 4000);
      const expired = await within(frank.closed, 10_000, 'frank closed');
      assert.equal(expired.code, CloseCode.tokenExpired);
      assert.ok(Date.now() >= helloOf(frank).expiresAt! + 500, 'closed only after exp plus the grace');
      assert.equal(dave.ws.readyState, dave.ws.OPEN, 'the refreshed connection stays');
      dave.close();
    } finally {
      await short.stop();
    }
  });

  it("another provider's algorithms verify from its JWKS (ES256, PS256, EdDSA); a key's wrong algorithm does not", async () => {
    const algs = ['ES256', 'PS256', 'EdDSA'] as const;
    const keys = await Promise.all(algs.map((alg) => generateKeyPair(alg, { extractable: true })));
    const jwks = {
      keys: await Promise.all(keys.map(async (k, i) => ({ ...(await exportJWK(k.publicKey)), kid: `k-${algs[i]}`, alg: algs[i] }))),
    };
    const provider: Server = createServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks)),
    );
    await new Promise<void>((r) => provider.listen(0, '127.0.0.1', () => r()));
    const sign = (alg: string, kid: string, key: (typeof keys)[number]['privateKey']) =>
      new SignJWT({ sub: `by-${alg}` }).setProtectedHeader({ alg, kid }).setAudience('ws-notifications').setExpirationTime('5m').sign(key);
    let other: RunningServer | undefined;
    try {
      other = await startServer({}, 'auth-algs', {
        auth: authFor(idp, { issuer: undefined, jwksUri: `http://127.0.0.1:${(provider.address() as AddressInfo).port}/jwks` }),
      });
      for (const [i, alg] of algs.entries()) {
        const client = await connectWith(other, await sign(alg, `k-${alg}`, keys[i].privateKey));
        assert.equal(helloOf(client).sub, `by-${alg}`, `${alg} verifies`);
        client.close();
      }
      // The ES256 key's kid on a token that says PS256 (signed with the PS256 key): no such key.
      await refused(other, await sign('PS256', 'k-ES256', keys[1].privateKey), CloseCode.invalidToken, 'unknown_key');
    } finally {
      await other?.stop();
      provider.close();
    }
  });

  it("readies every key of the provider's set it can use at the start, in one fetch, each then verifying with none", async () => {
    // An RSA and a P-256 key without alg (readied by type and curve), Ed25519 with it, and P-384, whose ES384 is not accepted.
    const specs = [
      { alg: 'RS256', kid: 'k-rsa', named: false },
      { alg: 'ES256', kid: 'k-p256', named: false },
      { alg: 'EdDSA', kid: 'k-ed', named: true },
      { alg: 'ES384', kid: 'k-p384', named: true },
    ] as const;
    const keys = await Promise.all(specs.map(({ alg }) => generateKeyPair(alg, { extractable: true })));
    const jwk = async (i: number): Promise<JWK> => ({
      ...(await exportJWK(keys[i].publicKey)),
      kid: specs[i].kid,
      ...(specs[i].named ? { alg: specs[i].alg } : {}),
    });
    const jwks = JSON.stringify({ keys: await Promise.all(specs.map((_, i) => jwk(i))) });
    const provider: Server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(jwks));
    await new Promise<void>((r) => provider.listen(0, '127.0.0.1', () => r()));
    const fetched: string[] = [];
    const jwksUri = `http://127.0.0.1:${(provider.address() as AddressInfo).port}/jwks`;
    const verifier = new TokenVerifier(authFor(idp, { issuer: undefined, jwksUri }), {
      jwksFetched: (result) => fetched.push(result),
      log: (error) => assert.fail(error),
    });
    try {
      assert.equal(await verifier.prime(), 3, 'the RSA, P-256 and Ed25519 keys; not P-384 (ES384 is not accepted)');
      assert.deepEqual(fetched, ['ok'], 'one fetch: readying asks the set for no key it lacks');
      for (const [i, { alg, kid }] of specs.slice(0, 3).entries()) {
        const token = await new SignJWT({ sub: kid })
          .setProtectedHeader({ alg, kid })
          .setAudience('ws-notifications')
          .setExpirationTime('5m')
          .sign(keys[i].privateKey);
        assert.equal((await verifier.verify(token)).sub, kid, `${alg} verifies`);
      }
      assert.deepEqual(fetched, ['ok'], 'no fetch after the first');
    } finally {
      verifier.close();
      provider.close();
    }
  });

  it('an issuer whose discovery fails closes with 1013 (try again), and the next connect asks it again', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    let failing = true;
    let discoveries = 0;
    const provider: Server = createServer((req, res) => {
      const issuer = `http://127.0.0.1:${(provider.address() as AddressInfo).port}`;
      if (req.url === '/jwks') return res.end(JSON.stringify({ keys: [{ ...jwk, kid: 'k1', alg: 'ES256' }] }));
      discoveries++;
      // Discovery fails until told otherwise, as a provider still starting would answer.
      if (failing) return res.writeHead(503).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
    });
    const jwk = await exportJWK(publicKey);
    await new Promise<void>((r) => provider.listen(0, '127.0.0.1', () => r()));
    const issuer = `http://127.0.0.1:${(provider.address() as AddressInfo).port}`;
    const token = await new SignJWT({ sub: 'quinn' })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(issuer)
      .setAudience('ws-notifications')
      .setExpirationTime('5m')
      .sign(privateKey);
    let late: RunningServer | undefined;
    try {
      late = await startServer({}, 'auth-discovery', { auth: authFor({ issuer }) });
      await refused(late, token, CloseCode.tryAgainLater, 'jwks_unavailable');
      failing = false;
      const failed = discoveries;
      const client = await connectWith(late, token);
      assert.equal(helloOf(client).sub, 'quinn', 'discovery asked again, and answered');
      assert.equal(discoveries, failed + 1, 'one more discovery, by this connect');
      client.close();
    } finally {
      await late?.stop();
      provider.close();
    }
  });

  it('a provider whose JWKS hangs: known keys still verify at once, a replica without keys closes with 1013 (try again)', async () => {
    // A JWKS endpoint that serves the provider's keys, then hangs once told to.
    let hang = false;
    const hung: Server = createServer((req, res) => {
      if (hang) return; // never answers
      fetch(`${idp.issuer}/jwks`).then(async (r) => res.writeHead(200, { 'content-type': 'application/json' }).end(await r.text()));
      void req;
    });
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', () => r()));
    const jwksUri = `http://127.0.0.1:${(hung.address() as AddressInfo).port}/jwks`;
    const viaHang = await startServer({}, 'auth-hang', { auth: authFor(idp, { jwksUri }) });
    try {
      const first = await connectWith(viaHang, await idp.token({ sub: 'gina' }));
      assert.equal(helloOf(first).sub, 'gina', 'keys fetched while the endpoint answered');
      hang = true;
      const started = Date.now();
      const second = await connectWith(viaHang, await idp.token({ sub: 'hal' }));
      assert.equal(helloOf(second).sub, 'hal');
      assert.ok(Date.now() - started < 1000, 'a known key does not wait on the hung endpoint');
      // A replica that has no keys yet (the endpoint hung from its start): try again later.
      const cold = await startServer({}, 'auth-cold', { auth: authFor(idp, { jwksUri }) });
      try {
        await refused(cold, await idp.token({ sub: 'ivy' }), CloseCode.tryAgainLater, 'jwks_unavailable');
      } finally {
        await cold.stop();
      }
      first.close();
      second.close();
    } finally {
      await viaHang.stop();
      hung.closeAllConnections();
      hung.close();
    }
  });

  it('a revocation reaches every replica through the broker: closes within 2 s (4501), refuses those tokens later, a fresh one connects', async () => {
    const nats = await startNats();
    const key = 'test-admin-key-0123456789abcdef';
    const [a, b] = [
      await brokerReplica(nats, 'rev-a', {}, { apiKey: key, auth: authFor(idp) }),
      await brokerReplica(nats, 'rev-b', {}, { apiKey: key, auth: authFor(idp) }),
    ];
    const onA = { url: a.url, metrics: a.metrics } as RunningServer;
    const onB = { url: b.url, metrics: b.metrics } as RunningServer;
    try {
      const oldToken = await idp.token({ sub: 'quinn', ttlSeconds: 300 });
      const [q1, q2] = [await connectWith(onA, oldToken), await connectWith(onB, oldToken)];
      const other = await connectWith(onB, await idp.token({ sub: 'rita' }));
      const revoke = (body: unknown, bearer = key) =>
        fetch(`http://127.0.0.1:${a.port}${REVOKE_API_PATH}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      assert.equal((await revoke({ sub: 'quinn' }, 'wrong-key-0123456789abcdef')).status, 401);
      assert.equal((await revoke({ subject: 'quinn' })).status, 400);
      // A subject's revocation covers tokens issued before its second (iat has whole seconds).
      const iat = JSON.parse(Buffer.from(oldToken.split('.')[1], 'base64url').toString()).iat as number;
      await eventually(() => Date.now() >= (iat + 1) * 1000, 2000, 'the second after the token was issued');
      const asked = Date.now();
      const answer = await revoke({ sub: 'quinn' });
      assert.equal(answer.status, 202);
      assert.equal(((await answer.json()) as { scope: string }).scope, 'fleet');
      const closes = await within(Promise.all([q1.closed, q2.closed]), 5000, 'the revoked connections closed');
      assert.ok(Date.now() - asked < 2000, `both closed within 2 s (${Date.now() - asked} ms)`);
      for (const c of closes) assert.deepEqual([c.code, c.reason], [CloseCode.revoked, 'revoked']);
      assert.equal(other.ws.readyState, other.ws.OPEN, 'another subject stays');
      await refused(onB, oldToken, CloseCode.revoked, 'revoked');
      // Issued after the revocation's second: valid.
      await eventually(() => Date.now() >= (Math.floor(asked / 1000) + 1) * 1000, 2000, 'the next second');
      assert.equal(helloOf(await connectWith(onA, await idp.token({ sub: 'quinn' }))).sub, 'quinn');
      // By token: only that one.
      const t1 = await idp.token({ sub: 'sam' });
      const t2 = await idp.token({ sub: 'sam' });
      const claims = JSON.parse(Buffer.from(t1.split('.')[1], 'base64url').toString()) as { jti: string; exp: number };
      assert.equal((await revoke({ jti: claims.jti, exp: claims.exp })).status, 202);
      await eventually(async () => (await metricValue(b.metrics.authRevocations)) === 2, 2000, 'the jti revocation reached b');
      await refused(onB, t1, CloseCode.revoked, 'revoked');
      assert.equal(helloOf(await connectWith(onB, t2)).sub, 'sam', "the subject's other token is fine");
      other.close();
    } finally {
      await Promise.all([a.server.stop(), b.server.stop()]);
      await nats.stop();
    }
  });

  it("the publish API takes a backend's token with a publish grant beside the key; no grant is 403 naming the topic", async () => {
    const publisher = { claim: 'realm_access.roles', role: 'notify-publisher', topics: ['news.*'], allow: ['publish' as const] };
    const withApi = await startServer({}, 'auth-api', { auth: authFor(idp, { grants: [...authFor(idp).grants, publisher] }) });
    try {
      const reader = await connectWith(withApi, await idp.token({ sub: 'una', roles: ['notify-reader'] }));
      reader.send({ type: 'subscribe', topic: 'news.world' });
      await reader.next('subscribed');
      const post = (bearer: string, topic: string) =>
        fetch(`${withApi.httpUrl}${PUBLISH_API_PATH}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
          body: JSON.stringify({ topic, data: { from: 'backend' } }),
        });
      // Client credentials: the ws-backend service account carries the publisher role.
      const { token: backend } = await backendToken(idp.issuer, TEST_IDP_SECRET);
      assert.equal((await post(backend, 'news.world')).status, 202);
      assert.deepEqual((await reader.next('notification')).data, { from: 'backend' });
      const denied = await post(backend, 'billing.invoices');
      assert.equal(denied.status, 403);
      assert.deepEqual(await denied.json(), { field: 'topic', error: 'forbidden: the token grants no publish on billing.invoices' });
      const user = await idp.token({ sub: 'una', roles: ['notify-reader'] });
      assert.equal((await post(user, 'news.world')).status, 403, 'a reader may not publish');
      assert.equal(await metricValue(withApi.metrics.authDenials, { action: 'publish' }), 2);
      const forged = await post(`${backend.slice(0, -4)}AAAA`, 'news.world');
      assert.equal(forged.status, 401);
      assert.match(((await forged.json()) as { error: string }).error, /^signature/);
      assert.equal((await post('not-a-token', 'news.world')).status, 401);
      assert.equal(await metricValue(withApi.metrics.authFailures, { reason: 'signature' }), 1);
      reader.close();
    } finally {
      await withApi.stop();
    }
  });

  it('with auth off, connect is answered auth_off and the connection stays', async () => {
    const open = await startServer({}, 'auth-none');
    try {
      const client = await TestClient.open(open.url);
      await client.next('hello');
      client.send({ type: 'connect', token: 'anything' });
      assert.equal((await client.next('error')).code, 'auth_off');
      client.send({ type: 'subscribe', topic: 'news.world' });
      await client.next('subscribed');
      client.close();
    } finally {
      await open.stop();
    }
  });

  it('with auth off, a client publishes over the WebSocket only with server.clientPublish; a backend still can through the API', async () => {
    const key = 'api-key-0123456789abcdef';
    const [readOnly, writable] = await Promise.all([
      startServer({ clientPublish: false }, 'auth-none-read-only', { apiKey: key }),
      startServer({ clientPublish: true }, 'auth-none-writable'),
    ]);
    try {
      const subscribed = async (server: RunningServer) => {
        const client = await TestClient.open(server.url);
        await client.next('hello');
        client.send({ type: 'subscribe', topic: 'news.world' });
        await client.next('subscribed');
        return client;
      };
      const reader = await subscribed(readOnly);
      reader.send({ type: 'publish', topic: 'news.world', data: 'forged', id: 'f-1' });
      const denied = await reader.next('error');
      assert.deepEqual([denied.code, denied.topic], ['forbidden', 'news.world']);
      const posted = await fetch(`${readOnly.httpUrl}${PUBLISH_API_PATH}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ topic: 'news.world', data: 'from the backend' }),
      });
      assert.equal(posted.status, 202);
      assert.equal(
        (await reader.next('notification')).data,
        'from the backend',
        'the connection stayed, and only the API publication came',
      );
      assert.deepEqual(
        reader.messages.filter((m) => m.type === 'notification').map((m) => m.data),
        ['from the backend'],
      );

      const writer = await subscribed(writable);
      writer.send({ type: 'publish', topic: 'news.world', data: 'allowed', id: 'a-1' });
      assert.equal((await writer.next('notification')).data, 'allowed');
      for (const c of [reader, writer]) c.close();
    } finally {
      await Promise.all([readOnly.stop(), writable.stop()]);
    }
  });
});

/** The promise's value, or a failure naming what did not happen in time. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** The hello a client got (connectWith waited for it). */
function helloOf(client: TestClient): Extract<ServerMessage, { type: 'hello' }> {
  const hello = client.messages.find((m) => m.type === 'hello');
  assert.ok(hello?.type === 'hello', 'the connect was answered with hello');
  return hello;
}
