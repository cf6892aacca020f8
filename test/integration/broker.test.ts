import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { runLoad } from '../../app/src/client/coordinator';
import { loadProfileSchema } from '../../app/src/shared/profile';
import { JetStreamBroker, type BrokerDelivery } from '../../app/src/server/broker';
import { createLogger } from '../../app/src/server/logger';
import { brokerSchema } from '../../app/src/topology';
import { brokerReplica, natsCluster, startNats, type RunningNats } from '../helpers/nats';
import { tcpRelay } from '../helpers/relay';
import { eventually, metricValue, TestClient } from '../helpers/server';
import { scratchDir } from '../helpers/scratch';
import type { Progress } from '../../app/src/client/timeline';

const replica = (nats: RunningNats, id: string, storage: 'memory' | 'file' = 'memory') => brokerReplica(nats, id, { storage });

describe('notifications through the broker (real nats-server with JetStream)', () => {
  it('a publication on one replica reaches the subscribers on every replica, in order, with offsets and the epoch', async (t) => {
    const nats = await startNats();
    const [a, b] = [await replica(nats, 'replica-a'), await replica(nats, 'replica-b')];
    t.after(async () => {
      await Promise.all([a.server.stop(), b.server.stop()]);
      await nats.stop();
    });
    const [onA, onB, publisher] = await Promise.all([TestClient.open(a.url), TestClient.open(b.url), TestClient.open(a.url)]);
    for (const c of [onA, onB]) {
      c.send({ type: 'subscribe', topic: 'orders' });
      await c.next('subscribed');
    }
    for (let i = 0; i < 20; i++) publisher.send({ type: 'publish', topic: 'orders', data: { i } });
    const acks = [];
    for (let i = 0; i < 20; i++) acks.push(await publisher.next('published'));
    assert.ok(
      acks.every((p) => typeof p.offset === 'number'),
      'acknowledged with the stored offset',
    );
    for (const c of [onA, onB]) {
      await eventually(() => c.messages.filter((m) => m.type === 'notification').length === 20, 5_000, 'every notification');
      const got = c.messages.filter((m) => m.type === 'notification') as {
        data: { i: number };
        offset: number;
        epoch: string;
        replica: string;
      }[];
      assert.deepEqual(
        got.map((n) => n.data.i),
        Array.from({ length: 20 }, (_, i) => i),
        'in publication order',
      );
      assert.deepEqual(
        got.map((n) => n.offset),
        acks.map((p) => p.offset),
        'the offsets the publisher was given',
      );
      assert.ok(got.every((n) => n.replica === 'replica-a' && n.epoch === got[0].epoch && n.epoch.length > 0));
    }
    for (const c of [onA, onB, publisher]) c.close();
  });

  it('a repeated publication id within the dedupe window is stored and delivered once', async (t) => {
    const nats = await startNats();
    const a = await replica(nats, 'replica-a');
    t.after(async () => {
      await a.server.stop();
      await nats.stop();
    });
    const [subscriber, publisher] = await Promise.all([TestClient.open(a.url), TestClient.open(a.url)]);
    subscriber.send({ type: 'subscribe', topic: 'orders' });
    await subscriber.next('subscribed');
    for (let i = 0; i < 3; i++) publisher.send({ type: 'publish', topic: 'orders', data: { n: 1 }, id: 'order-17' });
    const offsets = [];
    for (let i = 0; i < 3; i++) offsets.push((await publisher.next('published')).offset);
    assert.equal(new Set(offsets).size, 1, `one stored copy: ${offsets}`);
    await subscriber.next('notification');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(subscriber.messages.filter((m) => m.type === 'notification').length, 1);
    subscriber.close();
    publisher.close();
  });

  it('a replica that lost the broker resumes after the last notification it delivered: no gap, no repeat', async (t) => {
    const nats = await startNats();
    const [a, b] = [await replica(nats, 'replica-a', 'file'), await replica(nats, 'replica-b', 'file')];
    t.after(async () => {
      await Promise.all([a.server.stop(), b.server.stop()]);
      await nats.stop();
    });
    const [subscriber, publisher] = await Promise.all([TestClient.open(b.url), TestClient.open(a.url)]);
    subscriber.send({ type: 'subscribe', topic: 'orders' });
    await subscriber.next('subscribed');
    const publish = async (i: number) => {
      // Retried until the broker takes it (it is back within a few seconds).
      for (;;) {
        const before = publisher.messages.length;
        publisher.send({ type: 'publish', topic: 'orders', data: { i }, id: `p-${i}` });
        const answer = () => publisher.messages.slice(before).find((m) => m.type === 'published' || m.type === 'error');
        await eventually(() => answer() !== undefined, 15_000, `an answer to publication ${i}`);
        if (answer()!.type === 'published') return;
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    for (let i = 0; i < 5; i++) await publish(i);
    await nats.restart(200);
    // Straight into the stream, while the replicas are still waiting to reconnect (500 ms): a
    // replica that restarted "from now" would miss these.
    const direct = await connect({ servers: nats.url });
    const js = jetstream(direct);
    for (let i = 5; i < 8; i++) await js.publish('notify.orders', JSON.stringify({ topic: 'orders', data: { i }, replica: 'direct' }));
    await direct.close();
    for (let i = 8; i < 10; i++) await publish(i);
    await eventually(() => subscriber.messages.filter((m) => m.type === 'notification').length >= 10, 15_000, 'all ten delivered');
    await new Promise((r) => setTimeout(r, 300));
    const got = subscriber.messages.filter((m) => m.type === 'notification') as { data: { i: number } }[];
    assert.deepEqual(
      got.map((n) => n.data.i),
      Array.from({ length: 10 }, (_, i) => i),
      'in order, none missing, none twice',
    );
    subscriber.close();
    publisher.close();
  });

  it('replicas starting together all set the stream up; a stream of another name on the same subjects is still refused', async (t) => {
    const nats = await startNats();
    t.after(() => nats.stop());
    const log = createLogger('race', 'silent');
    for (let round = 0; round < 4; round++) {
      const config = brokerSchema.parse({
        enabled: true,
        urls: [nats.url],
        storage: 'memory',
        stream: `RACE_${round}`,
        subjectPrefix: `race${round}`,
      });
      const brokers = await Promise.all(Array.from({ length: 6 }, (_, i) => JetStreamBroker.connect(config, `race-${round}-${i}`, log)));
      await Promise.all(brokers.map((b) => b.close()));
    }
    const other = brokerSchema.parse({ enabled: true, urls: [nats.url], storage: 'memory', stream: 'OTHER', subjectPrefix: 'race0' });
    await assert.rejects(JetStreamBroker.connect(other, 'other', log), /subjects overlap/);
  });

  it('when the broker is gone, a publish is answered broker_unavailable and the connection stays open', async (t) => {
    const nats = await startNats();
    const a = await replica(nats, 'replica-a');
    t.after(() => a.server.stop());
    const publisher = await TestClient.open(a.url);
    assert.deepEqual([await metricValue(a.metrics.brokerEnabled), await metricValue(a.metrics.brokerConnected)], [1, 1]);
    await nats.stop();
    await eventually(async () => (await metricValue(a.metrics.brokerConnected)) === 0, 5_000, 'ws_broker_connected drops to 0');
    publisher.send({ type: 'publish', topic: 'orders', data: {} });
    const error = await publisher.next('error', 15_000);
    assert.equal(error.code, 'broker_unavailable');
    assert.equal(publisher.ws.readyState, publisher.ws.OPEN);
    publisher.close();
  });

  it('a nats-server that dies by itself is started again on its port and store, and the replicas go on', async (t) => {
    const nats = await startNats();
    const a = await replica(nats, 'replica-a', 'file');
    t.after(async () => {
      await a.server.stop();
      await nats.stop();
    });
    const subscriber = await TestClient.open(a.url);
    subscriber.send({ type: 'subscribe', topic: 'orders' });
    await subscriber.next('subscribed');
    const first = nats.pid();
    nats.signal('SIGKILL');
    await eventually(() => nats.pid() !== first, 10_000, 'a new nats-server');
    await eventually(async () => (await metricValue(a.metrics.brokerConnected)) === 1, 15_000, 'the replica connected again');
    const publisher = await TestClient.open(a.url);
    publisher.send({ type: 'publish', topic: 'orders', data: 'after the crash' });
    assert.equal(typeof (await publisher.next('published', 10_000)).offset, 'number');
    assert.equal((await subscriber.next('notification', 10_000)).data, 'after the crash');
    for (const c of [subscriber, publisher]) c.close();
  });
});

describe('recovery: subscribe with since (real nats-server)', () => {
  type N = { type: 'notification'; data: { i: number }; offset: number; epoch: string };
  const notifications = (c: TestClient) => c.messages.filter((m) => m.type === 'notification') as unknown as N[];

  async function setup(t: { after(fn: () => Promise<void>): void }, historyPerTopic = 1000) {
    const nats = await startNats();
    const [a, b] = [
      await brokerReplica(nats, 'replica-a', { historyPerTopic }),
      await brokerReplica(nats, 'replica-b', { historyPerTopic }),
    ];
    t.after(async () => {
      await Promise.all([a.server.stop(), b.server.stop()]);
      await nats.stop();
    });
    const publisher = await TestClient.open(a.url);
    const publish = async (from: number, to: number) => {
      for (let i = from; i < to; i++) publisher.send({ type: 'publish', topic: 'orders', data: { i } });
      for (let i = from; i < to; i++) await publisher.next('published');
    };
    /** A subscriber on b that got publications 0 to n - 1 live, then left: what it got. */
    const seenLive = async (n: number) => {
      const first = await TestClient.open(b.url);
      first.send({ type: 'subscribe', topic: 'orders' });
      await first.next('subscribed');
      await publish(0, n);
      await eventually(() => notifications(first).length === n, 5_000, `${n} live`);
      first.close();
      return notifications(first);
    };
    return { nats, a, b, publisher, publish, seenLive };
  }

  it('replays what was missed, then goes live: nothing missing, nothing twice', async (t) => {
    const { b, publish, seenLive } = await setup(t);
    const last = (await seenLive(3))[2];
    await publish(3, 6); // while away
    const again = await TestClient.open(b.url);
    again.send({ type: 'subscribe', topic: 'orders', since: { offset: last.offset, epoch: last.epoch } });
    const subscribed = await again.next('subscribed');
    assert.deepEqual({ recovered: subscribed.recovered, replayed: subscribed.replayed }, { recovered: true, replayed: 3 });
    await publish(6, 8); // live again
    await eventually(() => notifications(again).length === 5, 5_000, 'replayed and live');
    assert.deepEqual(
      notifications(again).map((n) => n.data.i),
      [3, 4, 5, 6, 7],
    );
    again.close();
  });

  it('at the seam, while publications keep coming, every notification arrives once and in order', async (t) => {
    const { b, publish, seenLive } = await setup(t);
    const at = (await seenLive(50))[19]; // the client had seen up to i = 19
    const flood = publish(50, 250); // keeps publishing while the client recovers
    const again = await TestClient.open(b.url);
    again.send({ type: 'subscribe', topic: 'orders', since: { offset: at.offset, epoch: at.epoch } });
    await flood;
    await eventually(() => notifications(again).at(-1)?.data.i === 249, 10_000, 'caught up');
    await new Promise((r) => setTimeout(r, 200));
    const got = notifications(again).map((n) => n.data.i);
    assert.deepEqual(
      got,
      Array.from({ length: 230 }, (_, k) => 20 + k),
      'from i = 20 to 249, each once, in order',
    );
    assert.equal((await again.next('subscribed')).recovered, true);
    again.close();
  });

  it('asks a broker that does not answer again, and recovers once it answers (as while a leader is elected)', async (t) => {
    const { nats, seenLive } = await setup(t);
    const seen = (await seenLive(5))[0];
    // A replica that connected after them has none in memory: it must ask the broker.
    const c = await brokerReplica(nats, 'replica-c');
    nats.signal('SIGSTOP');
    t.after(async () => nats.signal('SIGCONT'));
    // Stopped here, before the setup's hook stops nats-server: a replica closing its broker
    // connection after the server is gone writes to an ended socket.
    try {
      const again = await TestClient.open(c.url);
      again.send({ type: 'subscribe', topic: 'orders', since: { offset: seen.offset, epoch: seen.epoch } });
      // The first ask times out (the broker's request timeout); the replica asks again meanwhile.
      await eventually(async () => (await metricValue(c.metrics.recoveryRetries)) >= 1, 15_000, 'a recovery asked again');
      nats.signal('SIGCONT');
      const subscribed = await again.next('subscribed', 15_000);
      assert.deepEqual({ recovered: subscribed.recovered, replayed: subscribed.replayed }, { recovered: true, replayed: 4 });
      await eventually(() => notifications(again).length === 4, 5_000, 'the four after it');
      assert.deepEqual(
        notifications(again).map((n) => n.data.i),
        [1, 2, 3, 4],
      );
      again.close();
    } finally {
      nats.signal('SIGCONT');
      await c.server.stop();
    }
  });

  it('says recovered: false when the epoch changed or the history no longer reaches back', async (t) => {
    const { b, publish } = await setup(t, 3);
    const c = await TestClient.open(b.url);
    c.send({ type: 'subscribe', topic: 'orders', since: { offset: 5_000, epoch: 'another-epoch' } });
    const unrecovered = await c.next('subscribed');
    assert.deepEqual(
      { ...unrecovered, offset: undefined, epoch: undefined },
      { type: 'subscribed', topic: 'orders', recovered: false, replayed: 0, offset: undefined, epoch: undefined },
    );
    assert.equal(typeof unrecovered.offset, 'number', 'names where the subscription is gap-free from');
    assert.notEqual(unrecovered.epoch, 'another-epoch', "gap-free from here, in the stream's own epoch");
    // An offset from another epoch means nothing here: new notifications still arrive.
    await publish(100, 101);
    assert.equal(((await c.next('notification')) as unknown as N).data.i, 100);
    c.close();
    const first = await TestClient.open(b.url);
    first.send({ type: 'subscribe', topic: 'orders' });
    await first.next('subscribed');
    await publish(0, 1);
    const seen = await first.next('notification');
    first.close();
    // A subscriber on b that has all seven below: b delivered them, so what b remembers of the
    // topic (as many as the stream keeps) no longer reaches back either.
    const watcher = await TestClient.open(b.url);
    watcher.send({ type: 'subscribe', topic: 'orders' });
    await watcher.next('subscribed');
    await publish(1, 8); // seven more; the topic keeps three (with i = 100 above: the last three are 5, 6, 7)
    await eventually(() => notifications(watcher).some((n) => n.data.i === 7), 5_000, 'b delivered the seven');
    watcher.close();
    const again = await TestClient.open(b.url);
    again.send({ type: 'subscribe', topic: 'orders', since: { offset: seen.offset!, epoch: seen.epoch! } });
    const subscribed = await again.next('subscribed');
    assert.equal(subscribed.recovered, false, 'four were dropped: the application must reload');
    await eventually(() => notifications(again).length === 3, 5_000, 'what is left');
    assert.deepEqual(
      notifications(again).map((n) => n.data.i),
      [5, 6, 7],
    );
    again.close();
  });
});

/** Every user publishes on, and subscribes to, one topic at `publishRate` in all; no echoes, no thresholds. */
function publishersOnOneTopic(stage: { connections: number; rampRate: number; holdMs: number }, publishRate: number) {
  return loadProfileSchema.parse({ stages: [stage], senderFraction: 1, messageRate: 0, topics: 1, publishRate, thresholds: [] });
}

describe('the load client through the broker', () => {
  it('two runs in a row against the same broker both get their notifications (publication ids are unique to a run)', async (t) => {
    const nats = await startNats();
    const a = await replica(nats, 'replica-a');
    t.after(async () => {
      await a.server.stop();
      await nats.stop();
    });
    const profile = publishersOnOneTopic({ connections: 5, rampRate: 50, holdMs: 1_500 }, 10);
    for (const run of [1, 2]) {
      const { stats, deliveryAccount } = await runLoad({ url: a.url, insecure: false, workers: 1, profile });
      assert.ok(stats.counters.published > 0, `run ${run} published`);
      assert.ok(
        stats.counters.notifications >= stats.counters.published,
        `run ${run}: ${stats.counters.notifications} notifications for ${stats.counters.published} publications`,
      );
      // Five subscribers of the one topic: each owes what was stored after it subscribed.
      assert.equal(
        deliveryAccount.published,
        stats.counters.published,
        `run ${run}: every publication acknowledged (the settle waits for the last)`,
      );
      assert.ok(deliveryAccount.expected > 4 * deliveryAccount.published, `run ${run}: ${JSON.stringify(deliveryAccount)}`);
      assert.equal(deliveryAccount.lost, 0, `run ${run}: ${JSON.stringify(deliveryAccount)}`);
    }
  });

  it('publishes through the API as a backend does, to replicas closed to client publishing: every publication acknowledged and delivered', async (t) => {
    const nats = await startNats();
    const key = 'load-api-key-0123456789';
    const keyFile = join(scratchDir('ws-load-api-'), 'key');
    writeFileSync(keyFile, `${key}\n`);
    const a = await brokerReplica(nats, 'replica-a', {}, { apiKey: key, server: { clientPublish: false } });
    t.after(async () => {
      await a.server.stop();
      await nats.stop();
    });
    const profile = { ...publishersOnOneTopic({ connections: 5, rampRate: 50, holdMs: 1_500 }, 10), publishApi: { keyFile } };
    const { stats, deliveryAccount } = await runLoad({ url: a.url, insecure: false, workers: 1, profile });
    assert.deepEqual([...stats.errors], [], 'no refusal: nothing went over the WebSocket');
    assert.ok(stats.counters.published > 5, `${stats.counters.published} published`);
    assert.equal(deliveryAccount.published, stats.counters.published, 'every POST answered 202 with its offset');
    assert.ok(deliveryAccount.expected > 4 * deliveryAccount.published, JSON.stringify(deliveryAccount));
    assert.equal(deliveryAccount.lost, 0, JSON.stringify(deliveryAccount));
    assert.ok(stats.histograms.push.totalCount >= deliveryAccount.received, "push latency from the publisher's ts");
  });

  it('a run stopped early (Ctrl-C, or a test done with it) still settles: what was acknowledged arrives before anyone leaves', async (t) => {
    const nats = await startNats();
    // Replica b hears from the broker 150 ms late: its subscribers get a publication well after
    // the publishers on replica a got its acknowledgement.
    const slowLink = await tcpRelay([Number(new URL(nats.url).port)], 150);
    const a = await brokerReplica(nats, 'replica-a');
    const b = await brokerReplica({ ...nats, url: `nats://127.0.0.1:${slowLink.port}` }, 'replica-b');
    const balancer = await tcpRelay([a.port, b.port]);
    const abort = new AbortController();
    let load: ReturnType<typeof runLoad> | undefined;
    // A failed assertion stops the load before what it runs against.
    t.after(async () => {
      abort.abort();
      await load?.catch(() => undefined);
      await balancer.close();
      await a.server.stop();
      await b.server.stop();
      await slowLink.close();
      await nats.stop();
    });
    let latest: Progress | undefined;
    const url = `ws://127.0.0.1:${balancer.port}/ws-notifications`;
    const profile = publishersOnOneTopic({ connections: 20, rampRate: 200, holdMs: 60_000 }, 200);
    load = runLoad({ url, insecure: false, workers: 1, profile, signal: abort.signal, onProgress: (p) => (latest = p) });
    await eventually(() => latest?.open === 20, 10_000, 'all open');
    // Publications flowing to every subscriber, so some are in flight at the stop.
    const flowingFrom = latest!.receivedTotal;
    await eventually(() => latest!.receivedTotal > flowingFrom + 2_000, 10_000, 'notifications flowing');
    abort.abort();
    const { stats, deliveryAccount } = await load;
    assert.deepEqual([...stats.perReplica.keys()].sort(), ['replica-a', 'replica-b'], 'subscribers on both replicas');
    assert.ok(deliveryAccount.published > 50, JSON.stringify(deliveryAccount));
    assert.equal(deliveryAccount.lost, 0, JSON.stringify(deliveryAccount));
  });
});

describe('a JetStream cluster without a leader (real nats-servers)', () => {
  it('a replica waits out a cluster with no JetStream leader: at start, and for its consumer after the majority was lost', async (t) => {
    const cluster = await natsCluster(3);
    let broker: JetStreamBroker | undefined;
    // The client first, as a replica stops before its brokers: nats.js 3.4 closing a connection
    // whose server died that very moment can throw ERR_STREAM_WRITE_AFTER_END from its socket
    // (reproduced here, about one close in six; not while the connection stays open).
    t.after(async () => {
      await broker?.close();
      await cluster.stop();
    });
    // One server of three: no majority, so no leader, and every JetStream request times out.
    await cluster.start(0);
    const config = brokerSchema.parse({ stream: 'WS_TEST', storage: 'memory', enabled: true, urls: cluster.urls, streamReplicas: 1 });
    let settled = false;
    const connecting = JetStreamBroker.connect(config, 'replica-a', createLogger('replica-a', 'silent')).finally(() => (settled = true));
    // Past the first request's 5 s timeout, so the wait is a retry, not one slow answer.
    await new Promise((r) => setTimeout(r, 7_000));
    assert.equal(settled, false, 'still waiting for a leader, not failed');
    await cluster.start(1);
    broker = await connecting;
    await cluster.start(2);
    // The majority lost, as when a node is drained while another restarts; then one comes back.
    await cluster.kill(1);
    await cluster.kill(2);
    const delivered: BrokerDelivery[] = [];
    settled = false;
    const consuming = broker.consume((d) => delivered.push(d)).finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 7_000));
    assert.equal(settled, false, 'the consumer waits for a leader, not failed');
    await cluster.start(1);
    await consuming;
    const { offset } = await broker.publish({ topic: 'orders', data: { n: 1 }, replica: 'replica-a' });
    await eventually(() => delivered.some((d) => d.offset === offset), 10_000, 'the publication after the wait is delivered');
  });

  it("starts fresh replicas consuming while one of three servers is down, as a drained node's tasks do", async (t) => {
    const { cluster, connect } = await replicatedStream(t);
    const publisher = await connect('replica-a');
    await cluster.shutdown(2);
    await eventually(
      () =>
        publisher.publish({ topic: 'news', data: {}, replica: 'replica-a' }).then(
          () => true,
          () => false,
        ),
      20_000,
      'the stream taking publications after the stop',
    );
    // nats-server 2.9 puts about a third of new consumers on the stopped server: those creates
    // time out and are asked again (broker.ts, CONSUMER_CREATE_TIMEOUT_MS) until one starts.
    const received: BrokerDelivery[][] = [];
    for (let i = 0; i < 6; i++) {
      const got: BrokerDelivery[] = [];
      received.push(got);
      await (await connect(`replica-${i}`)).consume((d) => got.push(d));
    }
    const { offset } = await publisher.publish({ topic: 'news', data: { n: 1 }, replica: 'replica-a' });
    await eventually(() => received.every((got) => got.some((d) => d.offset === offset)), 10_000, 'every fresh replica delivering it');
  });

  it("reads a topic's history while one of three servers is down, as while a swarm node is drained", async (t) => {
    const { cluster, connect } = await replicatedStream(t);
    const publisher = await connect('replica-a');
    const offsets: number[] = [];
    for (let n = 0; n < 12; n++) {
      const { offset } = await publisher.publish({ topic: n % 2 ? 'orders' : 'news', data: { n }, replica: 'replica-a' });
      if (n % 2) offsets.push(offset);
    }
    // A replica started after them (as one moved off a drained node) has none in memory: it reads the stream.
    const replica = await connect('replica-b');
    // nats-server 2.9 still places new consumers on the stopped server: a third of consumer creates then time out.
    await cluster.shutdown(2);
    // Until the stream's leader is elected again (if it was the stopped one), its requests time out.
    const answered = () =>
      replica.history('news', 0).then(
        () => true,
        () => false,
      );
    await eventually(answered, 20_000, 'the stream answering after the stop');
    for (let round = 0; round < 12; round++) {
      const { deliveries, complete } = await replica.history('orders', 0);
      assert.deepEqual(
        deliveries.map((d) => d.offset),
        offsets,
        `round ${round}`,
      );
      assert.equal(complete, true);
    }
  });
});

/** Three nats-servers with the stream on all three (R3), and replicas' brokers on it; all closed after the test. */
async function replicatedStream(t: TestContext) {
  const cluster = await natsCluster(3);
  const brokers: JetStreamBroker[] = [];
  t.after(async () => {
    for (const broker of brokers) await broker.close();
    await cluster.stop();
  });
  await Promise.all([0, 1, 2].map((i) => cluster.start(i)));
  const config = brokerSchema.parse({ stream: 'WS_TEST', storage: 'memory', enabled: true, urls: cluster.urls, streamReplicas: 3 });
  const connect = async (name: string) => {
    const broker = await JetStreamBroker.connect(config, name, createLogger(name, 'silent'));
    brokers.push(broker);
    return broker;
  };
  return { cluster, connect };
}
