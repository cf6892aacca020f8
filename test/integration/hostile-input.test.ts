import assert from 'node:assert/strict';
import { connect as tcpConnect } from 'node:net';
import { describe, it } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { MAX_JSON_DEPTH } from '../../app/src/shared/json';
import { brokerReplica, startNats } from '../helpers/nats';
import { eventually, metricValue, retrying, TestClient } from '../helpers/server';

/**
 * What an anonymous client, a backend with a bug, or anything on the service network can send,
 * against real replicas on a real nats-server: none of it may stop a replica, silence a topic or
 * lose a notification (issue 23).
 */
const KEY = 'hostile-test-key-0123456789';
const deep = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;
type Replica = Awaited<ReturnType<typeof brokerReplica>>;

async function setup(t: { after(fn: () => Promise<void>): void }, broker: Parameters<typeof brokerReplica>[2] = {}) {
  const nats = await startNats();
  const replicas: Replica[] = [];
  t.after(async () => {
    await Promise.all(replicas.map((r) => r.server.stop()));
    await nats.stop();
  });
  for (const id of ['replica-a', 'replica-b']) replicas.push(await brokerReplica(nats, id, broker, { apiKey: KEY }));
  const post = (r: Replica, body: string, headers: Record<string, string> = {}) =>
    fetch(`http://127.0.0.1:${r.port}/api/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', ...headers },
      body,
    });
  return { nats, replicas, post };
}

/** A subscriber on each replica, subscribed to `topic`; resolves once all are. */
async function subscribers(replicas: Replica[], topic: string): Promise<TestClient[]> {
  const clients = await Promise.all(replicas.map((r) => TestClient.open(r.url)));
  for (const c of clients) {
    c.send({ type: 'subscribe', topic });
    await c.next('subscribed');
  }
  return clients;
}

/** A raw HTTP/1.1 exchange: the whole answer the server sends before it closes (or 3 s pass). */
function rawHttp(port: number, request: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1', () => socket.write(request));
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (d) => (answer += d));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(answer));
    setTimeout(() => socket.destroy(), 3_000).unref();
  });
}

describe('hostile input (real replicas on a real nats-server)', () => {
  it(`data nested 10,000 deep is refused by the API and the WebSocket, skipped from the stream, and no replica stops`, async (t) => {
    const { nats, replicas, post } = await setup(t);
    const [onA, onB] = await subscribers(replicas, 'deep');
    const first = await post(replicas[0], JSON.stringify({ topic: 'deep', data: 'before', id: 'before' }));
    const before = ((await first.json()) as { offset: number }).offset;

    // The publish API: 400 naming the body and the depth.
    const api = await post(replicas[0], `{"topic":"deep","data":${deep(10_000)}}`);
    assert.equal(api.status, 400);
    assert.match(((await api.json()) as { error: string }).error, new RegExp(`deeper than ${MAX_JSON_DEPTH}`));
    // A WebSocket publish: an error, and the connection stays open.
    const publisher = await TestClient.open(replicas[1].url);
    publisher.ws.send(`{"type":"publish","topic":"deep","data":${deep(10_000)}}`);
    assert.equal((await publisher.next('error')).code, 'too_deep');
    // Straight into NATS (a backend publishing on the subject, past both): stored, then skipped.
    const nc = await connect({ servers: nats.url });
    t.after(() => nc.close());
    const js = jetstream(nc);
    await js.publish('notify.deep', `{"topic":"deep","data":${deep(10_000)},"replica":"outside"}`);
    await js.publish('notify.deep', 'not json at all');
    for (const r of replicas)
      await eventually(
        async () => (await metricValue(r.metrics.brokerSkipped, { reason: 'undecodable' })) === 2,
        5_000,
        'each replica skipped both',
      );

    // Recovering the topic from before all of it, on every replica: recovered, the bad ones left out.
    for (const r of replicas) {
      const c = await TestClient.open(r.url);
      c.send({
        type: 'subscribe',
        topic: 'deep',
        since: { offset: before - 1, epoch: (onA.messages.find((m) => m.type === 'subscribed') as { epoch: string }).epoch },
      });
      const s = await c.next('subscribed');
      assert.equal(s.recovered, true);
      assert.deepEqual((await c.next('notification')).data, 'before');
      c.close();
    }
    // Every replica is still up and delivers the next notification, live.
    const next = await post(replicas[1], JSON.stringify({ topic: 'deep', data: 'after' }));
    assert.equal(next.status, 202);
    for (const c of [onA, onB]) {
      await eventually(() => c.messages.some((m) => m.type === 'notification' && m.data === 'after'), 5_000, 'the next notification');
      assert.deepEqual(
        c.messages.filter((m) => m.type === 'notification').map((m) => (m as { data: unknown }).data),
        ['before', 'after'],
      );
    }
    for (const r of replicas) assert.equal((await fetch(`http://127.0.0.1:${r.port}/healthz`)).status, 200);
    // Just inside the bound goes through whole.
    const inside = await post(replicas[0], `{"topic":"deep","data":${deep(MAX_JSON_DEPTH - 2)}}`);
    assert.equal(inside.status, 202);
    for (const c of [onA, onB, publisher]) c.close();
  });

  it('the same id on two topics is two publications; 123 and "123" are two ids; a repeat says duplicate with the first offset', async (t) => {
    const { replicas, post } = await setup(t);
    const [onA] = await subscribers(replicas, 'a');
    const [, onB] = await subscribers(replicas, 'b');
    const answer = async (body: unknown) =>
      (await post(replicas[0], JSON.stringify(body))).json() as Promise<{ offset: number; duplicate?: boolean }>;
    const a = await answer({ topic: 'a', data: 'junk', id: 'x' });
    const b = await answer({ topic: 'b', data: 'payment', id: 'x' });
    assert.notEqual(b.offset, a.offset);
    assert.equal(b.duplicate, undefined);
    assert.deepEqual((await onA.next('notification')).data, 'junk');
    assert.deepEqual((await onB.next('notification')).data, 'payment');
    const numeric = await answer({ topic: 'b', data: 'numeric', id: 123 });
    const text = await answer({ topic: 'b', data: 'text', id: '123' });
    assert.notEqual(text.offset, numeric.offset);
    const repeat = await answer({ topic: 'b', data: 'payment', id: 'x' });
    assert.deepEqual(repeat, { topic: 'b', id: 'x', offset: b.offset, duplicate: true });
    await eventually(() => onB.messages.filter((m) => m.type === 'notification').length === 3, 3_000, 'b got payment, numeric and text');
    // Over the WebSocket, the same rule.
    const ws = await TestClient.open(replicas[1].url);
    ws.send({ type: 'publish', topic: 'c', data: 'third topic', id: 'x' });
    const published = await ws.next('published');
    assert.ok(published.offset! > repeat.offset, 'stored anew');
    ws.send({ type: 'publish', topic: 'a', data: 'junk again', id: 'x' });
    assert.equal((await ws.next('published')).offset, a.offset, "the repeat on a is a's");
    for (const c of [onA, onB, ws]) c.close();
  });

  it("a position past the stream's end is not recovered, and the subscription then gets what comes", async (t) => {
    const { replicas, post } = await setup(t);
    const [first] = await subscribers(replicas, 'far');
    const epoch = (first.messages.find((m) => m.type === 'subscribed') as { epoch: string }).epoch;
    const publish = async (data: unknown) =>
      ((await (await post(replicas[0], JSON.stringify({ topic: 'far', data }))).json()) as { offset: number }).offset;
    let last = await publish(0);
    for (const offset of [last + 1_000_000, Number.MAX_SAFE_INTEGER]) {
      for (const r of replicas) {
        const c = await TestClient.open(r.url);
        c.send({ type: 'subscribe', topic: 'far', since: { offset, epoch } });
        const s = await c.next('subscribed');
        assert.equal(s.recovered, false, `since ${offset} on ${r.port}`);
        assert.ok(s.offset! <= last, `the subscription is gap-free from the replica's position (${s.offset}), not from ${offset}`);
        const data = `after ${offset} on ${r.port}`;
        last = await publish(data);
        await retrying(
          async () =>
            assert.ok(
              c.messages.some((m) => m.type === 'notification' && m.data === data),
              'delivered',
            ),
          3_000,
          50,
        );
        c.close();
      }
    }
    first.close();
  });

  it('a second subscribe to a topic, with since or without, is refused and replays nothing again', async (t) => {
    const { replicas, post } = await setup(t);
    for (let i = 0; i < 5; i++) await post(replicas[0], JSON.stringify({ topic: 'again', data: i }));
    const [c] = await subscribers(replicas.slice(0, 1), 'probe');
    const epoch = (c.messages.find((m) => m.type === 'subscribed') as { epoch: string }).epoch;
    c.send({ type: 'subscribe', topic: 'again', since: { offset: 0, epoch } });
    assert.equal((await c.next('subscribed')).replayed, 5);
    c.send({ type: 'subscribe', topic: 'again', since: { offset: 0, epoch } });
    c.send({ type: 'subscribe', topic: 'again' });
    assert.equal((await c.next('error')).code, 'already_subscribed');
    assert.equal((await c.next('error')).code, 'already_subscribed');
    await post(replicas[0], JSON.stringify({ topic: 'again', data: 'live' }));
    await eventually(() => c.messages.some((m) => m.type === 'notification' && m.data === 'live'), 3_000, 'the live one');
    const got = c.messages.filter((m) => m.type === 'notification').map((m) => (m as { data: unknown }).data);
    assert.deepEqual(got, [0, 1, 2, 3, 4, 'live'], 'each once');
    c.close();
  });

  it('topics with an empty name (a..b, .a, a.) are refused at subscribe and publish', async (t) => {
    const { replicas, post } = await setup(t);
    const c = await TestClient.open(replicas[0].url);
    for (const topic of ['a..b', '.a', 'a.']) {
      c.send({ type: 'subscribe', topic });
      assert.equal((await c.next('error')).code, 'invalid_field');
      assert.equal((await post(replicas[0], JSON.stringify({ topic, data: 1 }))).status, 400);
    }
    c.close();
  });

  it('a stalled broker: 504 "outcome unknown" (not 503), the connected gauge goes 0, and a retry with the id stores it once', async (t) => {
    const { nats, replicas, post } = await setup(t);
    const [subscriber] = await subscribers(replicas.slice(1), 'stall');
    const connected = () => metricValue(replicas[0].metrics.brokerConnected);
    assert.equal(await connected(), 1);
    nats.signal('SIGSTOP');
    t.after(async () => nats.signal('SIGCONT'));
    const answer = await post(replicas[0], JSON.stringify({ topic: 'stall', data: 'held', id: 'held-1' }));
    assert.equal(answer.status, 504);
    const body = (await answer.json()) as { error: string; message: string };
    assert.equal(body.error, 'broker_outcome_unknown');
    assert.match(body.message, /retry with the same id/);
    // The health check notices the stall: the alert's gauge goes 0 while the socket stays up.
    await eventually(async () => (await connected()) === 0, 15_000, 'ws_broker_connected 0 during the stall');
    nats.signal('SIGCONT');
    // The publication that got 504 was stored after all, once the broker went on.
    const n = await subscriber.next('notification', 10_000);
    assert.equal(n.data, 'held');
    const retry = (await (await post(replicas[0], JSON.stringify({ topic: 'stall', data: 'held', id: 'held-1' }))).json()) as {
      offset: number;
      duplicate?: boolean;
    };
    assert.deepEqual([retry.offset, retry.duplicate], [n.offset, true], 'the retry is the stored one');
    await eventually(async () => (await connected()) === 1, 15_000, 'connected again');
    assert.equal(subscriber.messages.filter((m) => m.type === 'notification').length, 1, 'delivered once');
    subscriber.close();
  });

  it('recent deliveries stay within broker.recentBytes, and recoveries past them ask the broker', async (t) => {
    const budget = 64 * 1024;
    const { replicas, post } = await setup(t, { recentBytes: budget });
    const [c] = await subscribers(replicas.slice(0, 1), 'bulk');
    const epoch = (c.messages.find((m) => m.type === 'subscribed') as { epoch: string }).epoch;
    const data = 'x'.repeat(4_000);
    const offsets: number[] = [];
    for (let i = 0; i < 60; i++)
      offsets.push(
        ((await (await post(replicas[0], JSON.stringify({ topic: 'bulk', data: `${i}${data}` }))).json()) as { offset: number }).offset,
      );
    await eventually(() => c.messages.filter((m) => m.type === 'notification').length === 60, 5_000, 'all delivered');
    for (const r of replicas) {
      const held = await metricValue(r.metrics.brokerRecentBytes);
      assert.ok(held > budget / 2 && held <= budget, `${held} bytes held of ${budget}`);
    }
    const late = await TestClient.open(replicas[1].url);
    late.send({ type: 'subscribe', topic: 'bulk', since: { offset: offsets[0] - 1, epoch } });
    const s = await late.next('subscribed');
    assert.deepEqual([s.recovered, s.replayed], [true, 60], 'all 60 from the broker, beyond what memory holds');
    for (const x of [c, late]) x.close();
  });

  it('bad HTTP gets its status, not a dropped socket; paths with dot segments are refused; the scheme is case-insensitive', async (t) => {
    const { replicas, post } = await setup(t);
    const port = replicas[0].port;
    assert.match(await rawHttp(port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`), /^HTTP\/1\.1 431 /);
    assert.match(await rawHttp(port, 'GET /healthz HTTP/1.1\nHost: x\n\n'), /^HTTP\/1\.1 400 /);
    assert.match(
      await rawHttp(port, 'POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'),
      /^HTTP\/1\.1 400 /,
    );
    for (const path of ['/internal/../api/publish', '/api/./publish', '/internal/%2e%2e/api/publish', '//internal/shed']) {
      assert.match(
        await rawHttp(port, `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`),
        /^HTTP\/1\.1 400 /,
        path,
      );
    }
    const lower = await post(replicas[0], JSON.stringify({ topic: 'ok', data: 1 }), { authorization: `bearer ${KEY}` });
    assert.equal(lower.status, 202);
    const longId = await post(replicas[0], JSON.stringify({ topic: 'ok', data: 1, id: 'i'.repeat(100_000) }));
    assert.equal(longId.status, 413);
    assert.equal(((await longId.json()) as { field: string }).field, '(body)', 'the body is over its limit, not the data');
    for (const r of replicas) assert.equal((await fetch(`http://127.0.0.1:${r.port}/healthz`)).status, 200);
  });
});
