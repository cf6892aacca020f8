import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { defineTopology, withoutAuth } from '../../app/src/topology';
import { nginxVersion, startLocalRun } from '../../local/run';
import { PUBLISH_API_PATH } from '../../app/src/shared/protocol';
import { TestClient } from '../helpers/server';
import { scratchDir } from '../helpers/scratch';
import { httpsRequest } from '../helpers/https';

const NGINX = nginxVersion();
assert.ok(NGINX, 'nginx must be installed for the end-to-end tests (apt-get install nginx-light)');

describe('the local topology with the broker (real nginx, TLS, nats-server)', () => {
  it('a publication reaches the subscribers on every replica, through nginx', async (t) => {
    const local = await startLocalRun(
      defineTopology(
        withoutAuth({ replicas: 3, proxy: { nginxVersion: NGINX, balancing: { strategy: 'round_robin' } }, broker: { enabled: true } }),
      ),
    );
    t.after(() => local.stop());
    assert.ok(local.broker, 'nats-server runs');
    const ca = readFileSync(local.caFile);
    // Round robin: six clients, two on each replica.
    const clients = await Promise.all(Array.from({ length: 6 }, () => TestClient.open(local.url, { ca })));
    const replicas = await Promise.all(clients.map(async (c) => (await c.next('hello')).replica));
    assert.equal(new Set(replicas).size, 3, `spread over the replicas: ${replicas}`);
    for (const c of clients) {
      c.send({ type: 'subscribe', topic: 'news' });
      await c.next('subscribed');
    }
    clients[0].send({ type: 'publish', topic: 'news', data: 'hello everyone' });
    const { offset } = await clients[0].next('published');
    for (const [i, c] of clients.entries()) {
      const n = await c.next('notification');
      assert.equal(n.data, 'hello everyone', `client on ${replicas[i]}`);
      assert.equal(n.offset, offset);
      assert.equal(n.replica, replicas[0], 'names the replica it was published on');
    }
    for (const c of clients) c.close();
  });

  it("routes the publish API through nginx's TLS port only when the topology says so", async (t) => {
    const keyFile = join(scratchDir('ws-api-key-'), 'key');
    const key = 'k'.repeat(32);
    writeFileSync(keyFile, key);
    const routed = await startLocalRun(
      defineTopology(withoutAuth({ replicas: 2, server: { apiKeyFile: keyFile }, proxy: { nginxVersion: NGINX, publishApi: true } })),
    );
    t.after(() => routed.stop());
    const ca = readFileSync(routed.caFile);
    const api = new URL(PUBLISH_API_PATH, routed.url.replace(/^wss:/, 'https:')).toString();
    const subscriber = await TestClient.open(routed.url, { ca });
    subscriber.send({ type: 'subscribe', topic: 'orders' });
    await subscriber.next('subscribed');
    const post = (body: unknown, auth = `Bearer ${key}`) =>
      httpsRequest(api, ca, {
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });

    const stored = await post({ topic: 'orders', data: { n: 1 }, id: 'via-proxy-1' });
    assert.equal(stored.status, 202, stored.body);
    const { offset } = JSON.parse(stored.body);
    assert.equal((await subscriber.next('notification')).offset, offset, 'delivered to a subscriber, whatever replica it is on');
    assert.equal((await post({ topic: 'orders', data: { n: 1 } }, 'Bearer wrong')).status, 401, 'the key is checked behind the proxy too');
    // A body past nginx's 16 KB default buffer is kept in memory, not written to a temp file the
    // workers (nobody) could not write in the runner's 0700 directory.
    const large = await post({ topic: 'orders', data: 'x'.repeat(20_000) });
    assert.equal(large.status, 202, large.body);
    assert.equal(((await subscriber.next('notification')).data as string).length, 20_000);
    const dataTooLarge = await post({ topic: 'orders', data: 'x'.repeat(65_600) });
    assert.deepEqual(
      [dataTooLarge.status, JSON.parse(dataTooLarge.body).field],
      [413, 'data'],
      `the replica names the field: ${dataTooLarge.body}`,
    );
    const bodyTooLarge = await post({ topic: 'orders', data: 'x'.repeat(70_000) });
    assert.deepEqual(
      [bodyTooLarge.status, JSON.parse(bodyTooLarge.body).field],
      [413, '(body)'],
      `nginx refuses the body before it is read: ${bodyTooLarge.body}`,
    );
    assert.equal((await httpsRequest(api, ca, { method: 'GET' })).status, 403, 'POST only');
    subscriber.close();

    const unrouted = await startLocalRun(
      defineTopology(withoutAuth({ replicas: 1, server: { apiKeyFile: keyFile }, proxy: { nginxVersion: NGINX } })),
    );
    t.after(() => unrouted.stop());
    const api2 = new URL(PUBLISH_API_PATH, unrouted.url.replace(/^wss:/, 'https:')).toString();
    const notRouted = await httpsRequest(api2, readFileSync(unrouted.caFile), {
      method: 'POST',
      headers: { authorization: `Bearer ${key}` },
      body: JSON.stringify({ topic: 'orders', data: 1 }),
    });
    assert.equal(notRouted.status, 404, "off by default: backends use the replicas' own port");
  });
});
