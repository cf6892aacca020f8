import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runLoad } from '../../app/src/client/coordinator';
import { ConfigError } from '../../app/src/shared/errors';
import { defineTopology, type TopologyInput, withoutAuth } from '../../app/src/topology';
import { nginxVersion, startLocalRun, type LocalRun } from '../../local/run';
import { sleep, TestClient } from '../helpers/server';

const NGINX = nginxVersion();
assert.ok(NGINX, 'nginx must be installed for the end-to-end tests (apt-get install nginx-light)');

/** A topology for nginx on this machine, with the given overrides. */
function topo(input: Partial<TopologyInput>): ReturnType<typeof defineTopology> {
  const proxy = (input.proxy ?? {}) as Record<string, unknown>;
  return defineTopology(withoutAuth({ ...input, proxy: { nginxVersion: NGINX, ...proxy } }));
}

async function withTopology(t: { after(fn: () => Promise<void>): void }, input: Partial<TopologyInput>): Promise<LocalRun> {
  const local = await startLocalRun(topo(input));
  t.after(() => local.stop());
  return local;
}

async function load(local: LocalRun, profile: Record<string, unknown>) {
  return runLoad({
    url: local.url,
    ca: readFileSync(local.caFile),
    insecure: false,
    workers: 1,
    profile: topo({ replicas: local.topology.replicas, load: { topics: 0, publishRate: 0, ...profile } }).load,
  });
}

/** The JSON access log nginx writes, one line per closed WebSocket. */
function accessLog(local: LocalRun): { remote_addr: string; uri: string; status: number; upstream: string }[] {
  return readFileSync(join(local.runtimeDir, 'access.log'), 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

const get = (url: string) =>
  new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
    const req = httpRequest(url, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.setTimeout(3000, () => req.destroy(new Error(`hung: ${url}`)));
    req.end();
  });

const oneStage = (connections: number, holdMs = 500) => ({ stages: [{ connections, rampRate: 300, holdMs }] });

describe('balancing through real nginx with TLS', () => {
  for (const strategy of ['round_robin', 'least_conn'] as const) {
    it(`${strategy}: every replica receives connections`, async (t) => {
      const local = await withTopology(t, { replicas: 3, proxy: { balancing: { strategy } } });
      const { stats } = await load(local, oneStage(60));
      assert.equal(stats.counters.opened, 60);
      assert.equal(stats.counters.failed, 0);
      assert.deepEqual([...stats.perReplica.keys()].sort(), ['ws-server-0', 'ws-server-1', 'ws-server-2']);
      for (const [replica, n] of stats.perReplica) assert.ok(n >= 10, `${replica} got ${n}`);
    });
  }

  it('ip_hash: one client address stays on one replica; addresses in different /24s use every replica', async (t) => {
    const local = await withTopology(t, { replicas: 3, proxy: { balancing: { strategy: 'ip_hash' } } });
    const single = await load(local, { ...oneStage(30), sourceAddresses: ['127.0.7.1'] });
    assert.equal(single.stats.perReplica.size, 1, `one address went to ${[...single.stats.perReplica.keys()]}`);

    const addresses = Array.from({ length: 16 }, (_, i) => `127.0.${i + 1}.1`);
    const spread = await load(local, { ...oneStage(64), sourceAddresses: addresses });
    assert.equal(spread.stats.perReplica.size, 3, `spread over ${JSON.stringify(Object.fromEntries(spread.stats.perReplica))}`);
    await sleep(300);
    const byAddress = new Map<string, Set<string>>();
    for (const line of accessLog(local)) {
      if (!byAddress.has(line.remote_addr)) byAddress.set(line.remote_addr, new Set());
      byAddress.get(line.remote_addr)!.add(line.upstream);
    }
    assert.ok(byAddress.size >= 16);
    for (const [address, upstreams] of byAddress) assert.equal(upstreams.size, 1, `${address} went to ${[...upstreams]}`);
  });

  it('hash on a key: each key lands on the same replica every time', async (t) => {
    const local = await withTopology(t, { replicas: 3, proxy: { balancing: { strategy: 'hash', hashKey: '$arg_client' } } });
    await load(local, { ...oneStage(45), keyParam: 'client' });
    await load(local, { ...oneStage(45), keyParam: 'client' });
    await sleep(300);
    const byKey = new Map<string, Set<string>>();
    for (const line of accessLog(local)) {
      const key = /client=(\d+)/.exec(line.uri)?.[1];
      assert.ok(key, line.uri);
      if (!byKey.has(key)) byKey.set(key, new Set());
      byKey.get(key)!.add(line.upstream);
    }
    assert.equal(byKey.size, 45);
    for (const [key, upstreams] of byKey) assert.equal(upstreams.size, 1, `client ${key} went to ${[...upstreams]}`);
    assert.equal(new Set([...byKey.values()].map((s) => [...s][0])).size, 3, 'keys spread over every replica');
  });
});

describe('timeouts derived from the heartbeat', () => {
  it('an idle connection outlives proxy_read_timeout because the server pings', async (t) => {
    const local = await withTopology(t, {
      replicas: 1,
      server: { pingIntervalMs: 500, pongTimeoutMs: 2000, writeTimeoutMs: 1000 },
      proxy: { readTimeoutMs: 1500, sendTimeoutMs: 1500, timeoutMarginMs: 500 },
      load: oneStage(1),
    });
    assert.match(local.config, /proxy_read_timeout 1500ms;/);
    const client = await TestClient.open(local.url, { ca: readFileSync(local.caFile) });
    await client.next('hello');
    await sleep(4500); // three read timeouts with no application traffic
    assert.equal(client.ws.readyState, client.ws.OPEN, 'still open');
    client.send({ type: 'echo', id: 1, ts: 1 });
    await client.next('echo');
    client.close();
  });

  it('a topology whose proxy timeout is shorter than the ping interval is refused', () => {
    assert.throws(
      () => topo({ server: { pingIntervalMs: 30_000 }, proxy: { readTimeoutMs: 20_000 } }),
      (e: unknown) => e instanceof ConfigError && /proxy\.readTimeoutMs/.test(e.message),
    );
  });
});

describe('limits, plain HTTP, status and redirect through nginx', () => {
  it('an oversize message through nginx ends with 1009', async (t) => {
    const local = await withTopology(t, {
      replicas: 1,
      server: { maxMessageBytes: 4096 },
      load: { ...oneStage(1), payload: { kind: 'fixed', bytes: 100 } },
    });
    const client = await TestClient.open(local.url, { ca: readFileSync(local.caFile) });
    await client.next('hello');
    client.send({ type: 'echo', id: 1, ts: 1, payload: 'x'.repeat(10_000) });
    assert.equal((await client.closed).code, 1009);
  });

  it('a plain GET on the path is answered (426), stub_status answers on the internal port only, port 80 redirects to HTTPS', async (t) => {
    const local = await withTopology(t, { replicas: 1, load: oneStage(1) });
    const ca = readFileSync(local.caFile);
    const httpsGet = (url: string) =>
      new Promise<number>((resolve, reject) => {
        const https = require('node:https') as typeof import('node:https');
        const req = https.request(url, { ca }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.setTimeout(3000, () => req.destroy(new Error('hung')));
        req.end();
      });
    assert.equal(await httpsGet(local.url.replace('wss:', 'https:')), 426);
    assert.equal(
      await httpsGet(`https://localhost:${local.httpsPort}/nginx_status`),
      404,
      'not on the public TLS port, even from loopback',
    );
    const status = await get(`http://127.0.0.1:${local.httpPort}/nginx_status`);
    assert.equal(status.status, 200);
    assert.match(status.body, /Active connections: \d+/);
    const redirect = await get(`http://127.0.0.1:${local.httpPort}/ws-notifications?x=1`);
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.location, `https://127.0.0.1:${local.httpsPort}/ws-notifications?x=1`);
  });

  it('limit_conn and limit_req turn excess handshakes away while admitted connections keep working', async (t) => {
    const local = await withTopology(t, {
      replicas: 2,
      proxy: { limits: { connectionsPerAddress: 20, handshakesPerSecond: 20, handshakeBurst: 10 } },
      load: { stages: [{ connections: 10, rampRate: 10, holdMs: 0 }] },
    });
    const ca = readFileSync(local.caFile);
    const attempts = await Promise.allSettled(Array.from({ length: 60 }, () => TestClient.open(local.url, { ca })));
    const admitted = attempts.filter((a): a is PromiseFulfilledResult<TestClient> => a.status === 'fulfilled').map((a) => a.value);
    const refused = attempts.filter((a): a is PromiseRejectedResult => a.status === 'rejected').map((a) => String(a.reason));
    assert.ok(admitted.length >= 5 && admitted.length <= 20, `${admitted.length} admitted`);
    assert.ok(refused.length >= 40, `${refused.length} refused`);
    assert.ok(
      refused.every((r) => /Unexpected server response: (429|503)/.test(r)),
      refused.find((r) => !/429|503/.test(r)),
    );
    for (const [i, c] of admitted.entries()) {
      c.send({ type: 'echo', id: i, ts: 1 });
      await c.next('echo');
      c.close();
    }
  });
});

describe('losing a replica mid-run', () => {
  it('its clients reconnect to the others; the run reports their closes and no other connection is lost', async (t) => {
    const local = await withTopology(t, {
      replicas: 3,
      server: { drainWindowMs: 300, drainDeadlineMs: 3000 },
      load: oneStage(60),
    });
    const run = load(local, {
      stages: [{ connections: 60, rampRate: 300, holdMs: 5000 }],
      senderFraction: 1,
      messageRate: 2,
      reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
    });
    await sleep(1500);
    await local.stopReplica(1, 'SIGTERM');
    const { stats } = await run;
    const onLost = stats.perReplica.get('ws-server-1') ?? 0;
    assert.ok(onLost >= 10, `${onLost} connections were on ws-server-1`);
    const unexpected = [...stats.closes].reduce((sum, [, [, u]]) => sum + u, 0);
    assert.equal(stats.closes.get(1001)?.[0], onLost, 'each of its clients got 1001 (going away: reconnect elsewhere, an expected close)');
    assert.equal(unexpected, 0, 'no connection was cut');
    assert.deepEqual([...stats.closes.keys()].sort(), [1000, 1001], 'no other close than its 1001s and ours at the end');
    assert.ok(stats.counters.reconnects >= onLost, 'they reconnected');
    assert.equal(stats.counters.opened, 60 + onLost, 'to the other replicas');
    assert.equal(stats.errors.size, 0, `errors: ${JSON.stringify(Object.fromEntries(stats.errors))}`);
  });
});
