import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { createReplica } from '../../app/src/server/replica';
import { rebalanceSchema, serverSchema } from '../../app/src/topology';
import { httpReplica } from '../../control/access';
import { rebalance } from '../../control/rebalance';
import { CONTROL_PATHS, PROXY_WORKER_HEADER, type AnnouncementReply, type ConnectionsReport } from '../../app/src/shared/control';
import { eventually, metricValue, sleep, startServer, TEST_CONTROL_KEY, TestClient, type RunningServer } from '../helpers/server';

/** A connection as nginx worker `pid` of proxy `host` would carry it. */
const via = (server: RunningServer, proxy: string, pid: number) =>
  TestClient.open(server.url, { headers: { [PROXY_WORKER_HEADER]: `${proxy}/${pid}` } });
const control = (server: RunningServer) => httpReplica('test', server.httpUrl, TEST_CONTROL_KEY);
const announce = (server: RunningServer, body: Record<string, unknown>) =>
  control(server).request<AnnouncementReply>('POST', CONTROL_PATHS.proxyWorkers, {
    shedAfterMs: 0,
    windowMs: 200,
    maxStaleGenerations: 2,
    ...body,
  });
const connections = (server: RunningServer) => control(server).request<ConnectionsReport>('GET', CONTROL_PATHS.connections);

describe('subscription limits', () => {
  it('a connection subscribing past its cap gets an error, and holds exactly the cap', async (t) => {
    const server = await startServer({ maxSubscriptionsPerConnection: 5 });
    t.after(() => server.stop());
    const c = await TestClient.open(server.url);
    for (let i = 0; i < 8; i++) c.send({ type: 'subscribe', topic: `t${i}` });
    for (let i = 0; i < 5; i++) assert.equal((await c.next('subscribed')).topic, `t${i}`);
    for (let i = 0; i < 3; i++) assert.equal((await c.next('error')).code, 'too_many_subscriptions');
    c.send({ type: 'subscribe', topic: 't0' }); // already held: refused as such, not at the cap
    assert.equal((await c.next('error')).code, 'already_subscribed');
    assert.equal(await metricValue(server.metrics.subscriptions), 5);
    assert.equal(await metricValue(server.metrics.subscriptionRejections, { limit: 'too_many_subscriptions' }), 3);
    assert.equal(c.ws.readyState, c.ws.OPEN, 'the connection stays open');
    c.close();
  });

  it('a replica at its total cap refuses further subscriptions with an error, for any connection', async (t) => {
    const server = await startServer({ maxSubscriptionsPerReplica: 4 });
    t.after(() => server.stop());
    const [a, b] = await Promise.all([TestClient.open(server.url), TestClient.open(server.url)]);
    for (let i = 0; i < 3; i++) a.send({ type: 'subscribe', topic: `a${i}` });
    for (let i = 0; i < 3; i++) await a.next('subscribed');
    b.send({ type: 'subscribe', topic: 'b0' });
    await b.next('subscribed');
    b.send({ type: 'subscribe', topic: 'b1' });
    assert.equal((await b.next('error')).code, 'replica_subscriptions_full');
    assert.equal(await metricValue(server.metrics.subscriptions), 4);
    a.close(); // its three go, so there is room again
    await eventually(async () => (await metricValue(server.metrics.subscriptions)) === 1);
    b.send({ type: 'subscribe', topic: 'b1' });
    assert.equal((await b.next('subscribed')).topic, 'b1');
    b.close();
  });
});

describe('after a proxy reload', () => {
  it('closes the connections of retired workers with 1001 over the window; current workers and direct clients stay', async (t) => {
    const server = await startServer();
    t.after(() => server.stop());
    const old = await Promise.all([via(server, 'px', 100), via(server, 'px', 100), via(server, 'px', 101)]);
    const current = await via(server, 'px', 200);
    const otherProxy = await via(server, 'other', 100);
    const direct = await TestClient.open(server.url);
    const reply = await announce(server, { proxy: 'px', workers: [200, 201], shedAfterMs: 300, windowMs: 300 });
    assert.deepEqual(reply, { scheduled: 3, retiredWorkers: 2 });
    assert.equal((await connections(server)).retired, 3);
    await sleep(150);
    assert.ok(
      old.every((c) => c.ws.readyState === c.ws.OPEN),
      'kept open until shedAfterMs',
    );
    const closes = await Promise.all(old.map((c) => c.closed));
    for (const close of closes) assert.deepEqual(close, { code: 1001, reason: 'proxy reloaded: reconnect' });
    for (const c of [current, otherProxy, direct]) assert.equal(c.ws.readyState, c.ws.OPEN);
    assert.equal(await metricValue(server.metrics.shedCloses, { reason: 'reload' }), 3);
    assert.deepEqual(await connections(server), { replica: 'test-0', connections: 3, retired: 0, shedding: 0, draining: false });
    for (const c of [current, otherProxy, direct]) c.close();
  });

  it('a handshake still in flight through a retired worker joins its wave', async (t) => {
    const server = await startServer();
    t.after(() => server.stop());
    const early = await via(server, 'px', 100);
    await announce(server, { proxy: 'px', workers: [200], shedAfterMs: 400, windowMs: 100 });
    const late = await via(server, 'px', 100);
    assert.equal((await connections(server)).retired, 2);
    assert.deepEqual(await Promise.all([early.closed, late.closed].map((p) => p.then((c) => c.code))), [1001, 1001]);
  });

  it('a handshake in flight through a retired worker that held nothing here yet joins the wave too', async (t) => {
    const server = await startServer();
    t.after(() => server.stop());
    const stays = await via(server, 'px', 101);
    const reply = await announce(server, { proxy: 'px', workers: [200], retired: [100, 101], shedAfterMs: 300, windowMs: 100 });
    assert.deepEqual(reply, { scheduled: 1, retiredWorkers: 1 });
    const late = await via(server, 'px', 100);
    assert.equal((await connections(server)).retired, 2, "the late handshake is counted with its worker's wave");
    assert.deepEqual(await Promise.all([stays.closed, late.closed].map((p) => p.then((c) => c.code))), [1001, 1001]);
    // A worker that is current is never retired, whatever an announcement lists.
    await announce(server, { proxy: 'px', workers: [300], retired: [300], shedAfterMs: 0, windowMs: 0 });
    const current = await via(server, 'px', 300);
    assert.equal((await connections(server)).retired, 0);
    current.close();
  });

  it('keeps at most maxStaleGenerations reloads waiting: a further reload sheds the oldest at once', async (t) => {
    const server = await startServer();
    t.after(() => server.stop());
    const gen1 = await via(server, 'px', 1);
    await announce(server, { proxy: 'px', workers: [2], shedAfterMs: 60_000, maxStaleGenerations: 1 });
    const gen2 = await via(server, 'px', 2);
    const reply = await announce(server, { proxy: 'px', workers: [3], shedAfterMs: 60_000, windowMs: 200, maxStaleGenerations: 1 });
    assert.equal(reply.scheduled, 1);
    assert.equal((await gen1.closed).code, 1001, 'the oldest reload wave was hurried');
    await sleep(300);
    assert.equal(gen2.ws.readyState, gen2.ws.OPEN, 'the newest retired generation still waits');
    assert.equal(await metricValue(server.metrics.proxyRetiredWorkers), 1);
    gen2.close();
  });

  it('refuses a malformed announcement, naming the field', async (t) => {
    const server = await startServer();
    t.after(() => server.stop());
    await assert.rejects(announce(server, { proxy: 'px', workers: [0] }), /400: .*workers/);
    await assert.rejects(control(server).request('GET', CONTROL_PATHS.proxyWorkers), /405/);
    await assert.rejects(control(server).request('GET', '/internal/nope'), /404/);
  });

  it('answers 401 to a call without the control key or with another, and changes nothing', async (t) => {
    const server = await startServer();
    t.after(() => server.stop());
    const client = await TestClient.open(server.url);
    for (const key of [undefined, 'wrong-key-0123456789abcdef', `${TEST_CONTROL_KEY}x`]) {
      const res = await fetch(`${server.httpUrl}${CONTROL_PATHS.shed}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
        body: JSON.stringify({ count: 1, windowMs: 0 }),
      });
      assert.equal(res.status, 401, `key ${key}`);
    }
    await sleep(100);
    assert.equal(client.ws.readyState, client.ws.OPEN, 'nobody was shed');
    assert.equal((await connections(server)).connections, 1);
    // Without a configured key the endpoints are off altogether.
    const { server: keyless } = createReplica({ ...serverSchema.parse({}), replicaId: 'keyless' }, { logLevel: 'silent' });
    const { port } = await keyless.listen(0, '127.0.0.1');
    t.after(() => keyless.stop());
    assert.equal(
      (await fetch(`http://127.0.0.1:${port}${CONTROL_PATHS.connections}`, { headers: { authorization: `Bearer ${TEST_CONTROL_KEY}` } }))
        .status,
      404,
    );
    client.close();
  });

  it('stays up when a control request is cut off mid-body, and answers the next one', async (t) => {
    const server = await startServer();
    t.after(() => server.stop());
    for (let i = 0; i < 3; i++) {
      // Announces 100 body bytes, sends 9 and goes away.
      const socket = connect(new URL(server.httpUrl).port as unknown as number, '127.0.0.1');
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.write(
        `POST ${CONTROL_PATHS.shed} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_CONTROL_KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"count":`,
      );
      await sleep(50);
      socket.destroy();
    }
    await sleep(100);
    assert.equal((await fetch(`${server.httpUrl}/healthz`)).status, 200);
    assert.equal((await connections(server)).connections, 0);
  });
});

describe('a rebalance round', () => {
  it('sheds the asked count with 1001 and refuses handshakes (503) at the cap while the round lasts', async (t) => {
    const server = await startServer();
    t.after(() => server.stop());
    const clients = await Promise.all(Array.from({ length: 10 }, () => TestClient.open(server.url)));
    const r = await control(server).request<{ scheduled: number }>('POST', CONTROL_PATHS.shed, {
      count: 4,
      windowMs: 200,
      holdAtMost: 6,
      capForMs: 1_000,
    });
    assert.equal(r.scheduled, 4);
    await eventually(async () => (await connections(server)).connections === 6, 2_000, 'four closed');
    const codes = (await Promise.all(clients.map((c) => Promise.race([c.closed.then((x) => x.code), sleep(50).then(() => 0)])))).filter(
      Boolean,
    );
    assert.deepEqual(codes, [1001, 1001, 1001, 1001]);
    await assert.rejects(TestClient.open(server.url), /503/);
    assert.equal(await metricValue(server.metrics.handshakeRejections, { reason: 'rebalancing' }), 1);
    await sleep(1_000);
    const after = await TestClient.open(server.url);
    after.close();
    for (const c of clients) c.close();
  });

  it("counts once a reload's wave is over: connections it is moving are not a surplus to cap", async (t) => {
    const [a, b] = await Promise.all([startServer({}, 'wave-a'), startServer({}, 'wave-b')]);
    t.after(() => Promise.all([a.stop(), b.stop()]));
    const retired = await Promise.all(Array.from({ length: 4 }, () => via(a, 'px', 1)));
    t.after(() => retired.forEach((c) => c.close()));
    await announce(a, { proxy: 'px', workers: [2], shedAfterMs: 800, windowMs: 200 });
    const replicas = [httpReplica('a', a.httpUrl, TEST_CONTROL_KEY), httpReplica('b', b.httpUrl, TEST_CONTROL_KEY)];
    const r = await rebalance(replicas, rebalanceSchema.parse({ enabled: true, windowMs: 200 }), { settleMs: 100, quietWithinMs: 10_000 });
    // Counted at once, a held 4 against b's 0: a round would have shed two and capped a at 2.
    assert.deepEqual(r.before, { a: 0, b: 0 });
    assert.equal(r.rounds.length, 0);
    assert.equal(await metricValue(a.metrics.shedCloses, { reason: 'rebalance' }), 0);
    assert.equal(await metricValue(a.metrics.shedCloses, { reason: 'reload' }), 4);
  });

  it('may take connections a reload wave is still holding, sooner than the wave would', async (t) => {
    const server = await startServer();
    t.after(() => server.stop());
    const retired = await Promise.all(Array.from({ length: 4 }, () => via(server, 'px', 1)));
    await announce(server, { proxy: 'px', workers: [2], shedAfterMs: 60_000 });
    const r = await control(server).request<{ scheduled: number }>('POST', CONTROL_PATHS.shed, { count: 2, windowMs: 100 });
    assert.equal(r.scheduled, 2);
    await eventually(async () => (await connections(server)).connections === 2, 2_000, 'two moved now');
    assert.equal(await metricValue(server.metrics.shedCloses, { reason: 'rebalance' }), 2);
    assert.equal((await connections(server)).retired, 2, 'the other two still wait in the reload wave');
    for (const c of retired) c.close();
  });
});
