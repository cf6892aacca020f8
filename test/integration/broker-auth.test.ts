import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { BACKEND_INBOX_PREFIX } from '../../components/broker-auth';
import { brokerReplica, startNats } from '../helpers/nats';
import { eventually, metricValue, TestClient } from '../helpers/server';
import { devAuth } from '../../app/src/topology';
import { REVOKE_API_PATH } from '../../app/src/shared/protocol';

/** What a promise settled with, as text, or 'pending' after `ms`. */
function outcome(promise: Promise<unknown>, ms = 3000): Promise<string> {
  return Promise.race([
    promise.then(
      (v) => `ok ${String(v)}`,
      (e: Error) => `error ${e.message}`,
    ),
    new Promise<string>((r) => setTimeout(() => r('pending'), ms).unref()),
  ]);
}

describe('the broker closed to strangers (real nats-server with users)', () => {
  it('refuses a client without credentials or with a wrong password; a publish-only backend cannot consume; replicas work', async (t) => {
    const nats = await startNats({ credentials: true });
    // With auth on, the replica also keeps the revocation bucket: its user must reach it.
    const key = 'test-admin-key-0123456789abcdef';
    const replica = await brokerReplica(
      nats,
      'auth-replica',
      {},
      { apiKey: key, auth: devAuth('http://127.0.0.1:9', { anonymous: ['orders'] }) },
    );
    t.after(async () => {
      await replica.server.stop();
      await nats.stop();
    });
    const { backend } = nats.credentials!;
    assert.match(await outcome(connect({ servers: nats.url, reconnect: false })), /Authorization Violation/i);
    assert.match(
      await outcome(connect({ servers: nats.url, reconnect: false, user: backend.user, pass: 'wrong-password' })),
      /Authorization Violation/i,
    );

    // The replica's user reaches the revocation bucket.
    const revoked = await fetch(`http://127.0.0.1:${replica.port}${REVOKE_API_PATH}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}` },
      body: JSON.stringify({ sub: 'mallory' }),
    });
    assert.equal(revoked.status, 202);
    await eventually(
      async () => (await metricValue(replica.metrics.authRevocations)) === 1,
      3000,
      'the revocation came back through the bucket',
    );

    // The backend publishes into the stream (JetStream acknowledges it on its own inbox prefix)...
    // `orders` is anonymous here: a connect without a token may subscribe to it.
    const subscriber = await TestClient.open(replica.url);
    subscriber.send({ type: 'connect' });
    await subscriber.next('hello');
    subscriber.send({ type: 'subscribe', topic: 'orders' });
    await subscriber.next('subscribed');
    const nc = await connect({ servers: nats.url, reconnect: false, ...backend, inboxPrefix: BACKEND_INBOX_PREFIX });
    t.after(() => nc.close());
    const ack = await jetstream(nc).publish('notify.orders', JSON.stringify({ data: { n: 1 }, replica: 'backend', ts: Date.now() }));
    assert.equal(ack.stream, 'WS_TEST');
    assert.deepEqual((await subscriber.next('notification', 5000)).data, { n: 1 }, 'a replica delivered what the backend published');
    subscriber.close();

    // ...but reads nothing: neither the topics, nor other users' inboxes, nor the JetStream API.
    for (const subject of ['notify.>', '_INBOX.>', '$KV.WS_TEST_REVOKED.>']) {
      const sub = nc.subscribe(subject);
      assert.match(await outcome(sub.closed), /Permissions Violation/i, `subscribe ${subject}`);
    }
    assert.doesNotMatch(await outcome(jetstreamManager(nc, { timeout: 1500 })), /^ok/, 'no JetStream API (no consumer can be made)');
  });
});
