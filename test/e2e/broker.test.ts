import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { defineTopology } from '../../app/src/topology';
import { nginxVersion, startLocalTopology } from '../../local/topology';
import { TestClient } from '../helpers/server';

const NGINX = nginxVersion();
assert.ok(NGINX, 'nginx must be installed for the end-to-end tests (apt-get install nginx-light)');

describe('the local topology with the broker (real nginx, TLS, nats-server)', () => {
  it('a publication reaches the subscribers on every replica, through nginx', async (t) => {
    const local = await startLocalTopology(defineTopology({ replicas: 3, proxy: { nginxVersion: NGINX, balancing: { strategy: 'round_robin' } }, broker: { enabled: true } }));
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
});
