import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyDelta } from 'fossil-delta';
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';
import { runLoad } from '../../app/src/client/coordinator';
import { CENTRIFUGE_PATH } from '../../app/src/shared/centrifuge';
import { loadProfileSchema } from '../../app/src/shared/profile';
import type { ServerMessage } from '../../app/src/shared/protocol';
import { webhookSequence } from '../../app/src/shared/webhook-examples';
import { Recorder } from '../helpers/centrifuge-sdk';
import { brokerReplica, startNats, type RunningNats } from '../helpers/nats';
import { eventually, TestClient } from '../helpers/server';

type Notification = Extract<ServerMessage, { type: 'notification' }>;

/** Real payloads of one repository, in the order the load client sends them. */
const PAYLOADS = webhookSequence(['push', 'pull_request', 'issues']).slice(0, 8);

async function setup(t: { after(fn: () => Promise<void>): void }) {
  const nats = await startNats();
  const replicas: Awaited<ReturnType<typeof brokerReplica>>[] = [];
  t.after(async () => {
    for (const r of replicas) await r.server.stop();
    await nats.stop();
  });
  const replica = async (id: string, deltaTopics = ['repo.*']) => {
    const r = await brokerReplica(nats, id, {}, { server: { deltaTopics } });
    replicas.push(r);
    return r;
  };
  return { nats: nats as RunningNats, replica };
}

/** Publishes the payloads in order from a connection of its own, each acknowledged before the next. */
async function publish(url: string, topic: string, payloads: readonly { payload: unknown }[]): Promise<void> {
  const publisher = await TestClient.open(url);
  await publisher.next('hello');
  try {
    for (const [i, p] of payloads.entries()) {
      publisher.send({ type: 'publish', topic, id: `p${i}-${Math.random()}`, data: p.payload });
      await publisher.next('published', 5_000);
    }
  } finally {
    publisher.close();
  }
}

/** The data text of each notification, rebuilt as a delta subscriber does (client/deltas.ts does the same for the load client). */
function rebuild(notifications: Notification[]): string[] {
  let base: Uint8Array | undefined;
  return notifications.map((n) => {
    if (n.delta !== undefined) {
      assert.ok(base, 'a delta came before any full payload');
      base = applyDelta(base, Buffer.from(n.delta));
    } else {
      assert.equal(typeof n.json, 'string', 'a delta subscription gets its full payloads as text');
      base = Buffer.from(n.json!);
    }
    return Buffer.from(base).toString();
  });
}

const notificationsOf = (c: TestClient, topic: string) =>
  c.messages.filter((m): m is Notification => m.type === 'notification' && m.topic === topic);

describe('fossil deltas on the native protocol', () => {
  it('a delta subscriber gets each payload as a delta against the one before, byte-exact, far smaller; a plain one gets data', async (t) => {
    const { replica } = await setup(t);
    const [a, b] = [await replica('delta-a'), await replica('delta-b')];
    const withDelta = await TestClient.open(b.url);
    const plain = await TestClient.open(b.url);
    t.after(() => {
      withDelta.close();
      plain.close();
    });
    withDelta.send({ type: 'subscribe', topic: 'repo.hello', delta: 'fossil' });
    plain.send({ type: 'subscribe', topic: 'repo.hello' });
    assert.equal((await withDelta.next('subscribed')).delta, true);
    assert.equal((await plain.next('subscribed')).delta, undefined);

    await publish(a.url, 'repo.hello', PAYLOADS);
    await eventually(() => notificationsOf(withDelta, 'repo.hello').length === PAYLOADS.length, 10_000, 'every payload');
    await eventually(() => notificationsOf(plain, 'repo.hello').length === PAYLOADS.length, 10_000, 'every plain payload');

    const got = notificationsOf(withDelta, 'repo.hello');
    assert.deepEqual(
      rebuild(got),
      PAYLOADS.map((p) => p.text),
      'every rebuilt payload is the published one, byte for byte',
    );
    assert.equal(got[0].delta, undefined, 'the first goes in full: there is nothing to apply a delta to');
    assert.ok(
      got.slice(1).every((n) => n.delta !== undefined),
      'every later one goes as a delta',
    );
    assert.ok(got.every((n) => n.data === undefined));
    const deltaBytes = got.slice(1).reduce((sum, n) => sum + Buffer.byteLength(n.delta!), 0);
    const fullBytes = PAYLOADS.slice(1).reduce((sum, p) => sum + Buffer.byteLength(p.text), 0);
    assert.ok(deltaBytes * 3 < fullBytes, `deltas of ${deltaBytes} bytes for ${fullBytes} bytes of payloads`);
    assert.deepEqual(
      notificationsOf(plain, 'repo.hello').map((n) => n.data),
      PAYLOADS.map((p) => p.payload),
    );
  });

  it('after a gap the next payload goes in full: a recovery replays in full, a late subscriber starts in full', async (t) => {
    const { replica } = await setup(t);
    const server = await replica('delta-gap');
    const first = await TestClient.open(server.url);
    first.send({ type: 'subscribe', topic: 'repo.gap', delta: 'fossil' });
    await first.next('subscribed');
    await publish(server.url, 'repo.gap', PAYLOADS.slice(0, 3));
    await eventually(() => notificationsOf(first, 'repo.gap').length === 3, 10_000, 'the first three');
    const last = notificationsOf(first, 'repo.gap').at(-1)!;
    first.close();

    // Missed while away: two publications. The recovery sends them in full, then deltas go on.
    await publish(server.url, 'repo.gap', PAYLOADS.slice(3, 5));
    const back = await TestClient.open(server.url);
    const late = await TestClient.open(server.url);
    t.after(() => {
      back.close();
      late.close();
    });
    back.send({ type: 'subscribe', topic: 'repo.gap', delta: 'fossil', since: { offset: last.offset, epoch: last.epoch } });
    late.send({ type: 'subscribe', topic: 'repo.gap', delta: 'fossil' });
    const resumed = await back.next('subscribed');
    assert.equal(resumed.recovered, true);
    assert.equal(resumed.delta, true);
    await late.next('subscribed');
    await publish(server.url, 'repo.gap', PAYLOADS.slice(5, 7));
    await eventually(() => notificationsOf(back, 'repo.gap').length === 4, 10_000, 'the replay and two live');
    await eventually(() => notificationsOf(late, 'repo.gap').length === 2, 10_000, 'two live');

    const replayed = notificationsOf(back, 'repo.gap');
    assert.deepEqual(
      replayed.map((n) => (n.delta === undefined ? 'full' : 'delta')),
      ['full', 'full', 'delta', 'delta'],
    );
    assert.deepEqual(
      rebuild(replayed),
      PAYLOADS.slice(3, 7).map((p) => p.text),
    );
    const joined = notificationsOf(late, 'repo.gap');
    assert.deepEqual(
      joined.map((n) => (n.delta === undefined ? 'full' : 'delta')),
      ['full', 'delta'],
    );
    assert.deepEqual(
      rebuild(joined),
      PAYLOADS.slice(5, 7).map((p) => p.text),
    );
  });

  it('a topic the topology does not list gets no deltas, even when asked', async (t) => {
    const { replica } = await setup(t);
    const server = await replica('delta-off');
    const client = await TestClient.open(server.url);
    t.after(() => client.close());
    client.send({ type: 'subscribe', topic: 'news', delta: 'fossil' });
    assert.equal((await client.next('subscribed')).delta, undefined);
    await publish(server.url, 'news', PAYLOADS.slice(0, 2));
    await eventually(() => notificationsOf(client, 'news').length === 2, 10_000, 'both');
    assert.deepEqual(
      notificationsOf(client, 'news').map((n) => n.data),
      PAYLOADS.slice(0, 2).map((p) => p.payload),
    );
  });
});

describe("fossil deltas on Centrifugo's protocol", () => {
  it("the SDK's delta: 'fossil' subscription decodes every publication to what was published", async (t) => {
    const { replica } = await setup(t);
    const server = await replica('delta-sdk');
    const client = new Centrifuge(`${server.url.replace(/\/ws-notifications$/, '')}${CENTRIFUGE_PATH}`, { websocket: WebSocket });
    t.after(() => client.disconnect());
    const sub = client.newSubscription('repo.sdk', { delta: 'fossil' });
    const seen = new Recorder(sub, ['subscribed', 'publication', 'error']);
    sub.subscribe();
    client.connect();
    await seen.wait('subscribed');
    await publish(server.url, 'repo.sdk', PAYLOADS);
    await seen.wait('publication', () => seen.count('publication') === PAYLOADS.length);
    assert.deepEqual(
      seen.seen.filter((s) => s.event === 'publication').map((s) => s.ctx.data),
      PAYLOADS.map((p) => p.payload),
    );
    const stats = sub.deltaStats();
    assert.equal(stats.numFullPayloads, 1, JSON.stringify(stats));
    assert.equal(stats.numDeltaPayloads, PAYLOADS.length - 1, JSON.stringify(stats));
    assert.ok(stats.bytesReceived * 3 < stats.bytesDecoded, JSON.stringify(stats));
  });
});

describe('the load client with real payloads and deltas', () => {
  for (const protocol of ['native', 'centrifuge'] as const) {
    it(`${protocol}: GitHub webhook payloads published per repository topic arrive as checked deltas, none lost`, async (t) => {
      const { replica } = await setup(t);
      // The load client's topics are t0, t1...: every topic has deltas.
      const server = await replica(`delta-load-${protocol}`, ['>']);
      const profile = loadProfileSchema.parse({
        stages: [{ connections: 12, rampRate: 100, holdMs: 2_000 }],
        senderFraction: 0.25,
        messageRate: 0,
        topics: 3,
        publishRate: 12,
        payload: { source: 'github-webhooks', events: ['push', 'issues', 'pull_request'] },
        delta: true,
        protocol,
        thresholds: [],
      });
      const url = protocol === 'native' ? server.url : server.url.replace(/\/ws-notifications$/, CENTRIFUGE_PATH);
      const { stats, deliveryAccount } = await runLoad({ url, insecure: false, workers: 1, profile });
      const c = stats.counters;
      assert.deepEqual([...stats.errors], [], 'no delta failed to apply or rebuilt other data');
      assert.equal(deliveryAccount.lost, 0);
      assert.ok(c.deltaApplied > c.deltaFull, `${c.deltaApplied} deltas, ${c.deltaFull} full`);
      assert.equal(c.deltaApplied + c.deltaFull, c.notifications);
      assert.equal(c.deltaVerified, c.notifications, 'every rebuilt payload equals the one published');
      assert.ok(c.deltaWireBytes * 2 < c.deltaDataBytes, `${c.deltaWireBytes} bytes on the wire for ${c.deltaDataBytes}`);
    });
  }
});
