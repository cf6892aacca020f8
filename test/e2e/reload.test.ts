import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runLoad, type Progress } from '../../app/src/client/coordinator';
import { defineTopology, reloadShedDelayMs, type TopologyInput, withoutAuth } from '../../app/src/topology';
import { localProxy } from '../../control/access';
import { nginxVersion, startLocalRun, type LocalRun } from '../../local/run';
import { stopFollower } from '../../local/follower';
import { CONTROL_PATHS, type ConnectionsReport } from '../../app/src/shared/control';
import { eventually, sleep, TestClient } from '../helpers/server';

const NGINX = nginxVersion();
assert.ok(NGINX, 'nginx must be installed for the end-to-end tests (apt-get install nginx-light)');

/**
 * Reloads under load, observed for longer than nginx's worker_shutdown_timeout. The deadline is
 * short (8 s) so the test stays short; the mechanism has to hold whatever the number. The margin
 * (3 s, the default is 5 s) absorbs the announcement's delay when CI runs test files in parallel
 * on 2 cores: with 1 s, one loaded run saw the last old worker leave 36 ms after the deadline.
 */
const SHORT_DEADLINE: Partial<TopologyInput> = {
  replicas: 2,
  proxy: { nginxVersion: NGINX, shutdownTimeoutMs: 8_000, reload: { shedWindowMs: 2_000, marginMs: 3_000 } },
};
const CONNECTIONS = 100;

async function underLoad(t: { after(fn: () => Promise<void>): void }, input: Partial<TopologyInput>) {
  const topology = defineTopology(withoutAuth(input));
  const local = await startLocalRun(topology);
  t.after(() => local.stop());
  let latest: Progress | undefined;
  const abort = new AbortController();
  const run = runLoad({
    url: local.url,
    ca: readFileSync(local.caFile),
    insecure: false,
    workers: 1,
    signal: abort.signal,
    onProgress: (p) => (latest = p),
    profile: defineTopology({
      ...withoutAuth(input),
      load: {
        stages: [{ connections: CONNECTIONS, rampRate: 200, holdMs: 60_000 }],
        senderFraction: 0.5,
        messageRate: 2,
        topics: 0,
        publishRate: 0,
        reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
      },
    }).load,
  });
  await eventually(() => latest?.open === CONNECTIONS, 10_000, `${CONNECTIONS} connections open`);
  return { local, topology, run, abort, progress: () => latest! };
}

/**
 * After a reload at `reloadedAt`: the retired workers' connections stay open until the shed
 * starts, then get 1001 and come back, and the old workers are gone before nginx's deadline;
 * observed past it with margin, so nothing was cut late either.
 */
async function cutNothingPastTheDeadline(
  { local, topology, run, abort, progress }: Awaited<ReturnType<typeof underLoad>>,
  reloadedAt: number,
): Promise<void> {
  await sleep(reloadShedDelayMs(topology.proxy) - 500);
  assert.equal(progress().unexpectedCloses, 0, 'kept open until the shed starts');
  const gone = await retiredWorkersGone(local, reloadedAt, topology.proxy.shutdownTimeoutMs);
  assert.ok(
    gone < topology.proxy.shutdownTimeoutMs,
    `old workers exited ${gone} ms after the reload, before the ${topology.proxy.shutdownTimeoutMs} ms deadline`,
  );
  await sleep(Math.max(0, topology.proxy.shutdownTimeoutMs + 2_000 - (Date.now() - reloadedAt)));
  abort.abort();
  const { stats } = await run;
  const unexpected = [...stats.closes].reduce((sum, [, [, u]]) => sum + u, 0);
  assert.equal(unexpected, 0, `unexpected closes: ${JSON.stringify([...stats.closes])}`);
  assert.equal(stats.closes.get(1001)?.[0], CONNECTIONS, 'each connection of a retired worker got one 1001 and reconnected');
  assert.equal(stats.counters.failed, 0);
  assert.equal(stats.errors.size, 0, JSON.stringify(Object.fromEntries(stats.errors)));
  // (An echo sent just as its 1001 went out is not answered: no data frames after a Close.)
}

/** A reload by signal alone, as anyone outside the project would do it; returns when it was sent. */
async function plainReload(local: LocalRun): Promise<number> {
  const proxy = localProxy({
    name: 'nginx',
    pidFile: join(local.runtimeDir, 'nginx.pid'),
    configFile: join(local.runtimeDir, 'nginx.conf'),
    prefix: local.runtimeDir,
  });
  const at = Date.now();
  await proxy.sh(`kill -HUP "$(cat '${proxy.pidFile}')"`);
  return at;
}

/** Waits until nginx has no retired workers left, returning how long after `since` that was. */
async function retiredWorkersGone(local: LocalRun, since: number, timeoutMs: number): Promise<number> {
  await eventually(async () => (await local.proxyWorkers()).retiring.length === 0, timeoutMs, 'retired nginx workers exited');
  return Date.now() - since;
}

describe('an nginx reload under load', () => {
  it("cuts nothing: the retired workers' connections get 1001 before the deadline, observed past it", async (t) => {
    const load = await underLoad(t, SHORT_DEADLINE);
    const { local, topology } = load;
    const reloadedAt = Date.now();
    const reload = await local.reloadProxy();
    // Scheduled by this reload's announcement or by the follower's, whichever came first.
    const reports = await Promise.all(local.replicaAccess().map((r) => r.request<ConnectionsReport>('GET', CONTROL_PATHS.connections)));
    assert.equal(
      reports.reduce((a, r) => a + r.retired, 0),
      CONNECTIONS,
      'every connection came through a worker the reload retired',
    );
    assert.equal(reload.retiring.length, topology.proxy.workerProcesses, 'the old workers are shutting down');

    await cutNothingPastTheDeadline(load, reloadedAt);
  });

  it('a plain reload (kill -HUP, as a certificate hook or `nginx -s reload` does) is announced by the follower: cuts nothing, observed past the deadline', async (t) => {
    const load = await underLoad(t, SHORT_DEADLINE);
    await cutNothingPastTheDeadline(load, await plainReload(load.local));
  });

  it('with the follower stopped, the same plain reload has nginx cut them all with 1006 at its deadline: what the follower prevents', async (t) => {
    const { local, topology, run, abort, progress } = await underLoad(t, SHORT_DEADLINE);
    await Promise.all(local.followers.map(stopFollower));
    const reloadedAt = await plainReload(local);
    await eventually(() => progress().unexpectedCloses === CONNECTIONS, topology.proxy.shutdownTimeoutMs + 3_000, 'every connection cut');
    const cutAfter = Date.now() - reloadedAt;
    assert.ok(cutAfter >= topology.proxy.shutdownTimeoutMs - 500, `cut ${cutAfter} ms after the reload, at the deadline`);
    abort.abort();
    const { stats } = await run;
    assert.equal(stats.closes.get(1006)?.[1], CONNECTIONS);
  });

  it('a replica drops a slow consumer; nginx lets go of its client side within the write deadline, not after 60 s', async (t) => {
    const local = await startLocalRun(
      defineTopology(
        withoutAuth({
          replicas: 1,
          server: { writeTimeoutMs: 1_000, sendBufferLimitBytes: 64 * 1024, pingIntervalMs: 5_000, pongTimeoutMs: 10_000 },
          proxy: { nginxVersion: NGINX },
        }),
      ),
    );
    t.after(() => local.stop());
    const ca = readFileSync(local.caFile);
    const active = async () =>
      Number(/Active connections: (\d+)/.exec(await (await fetch(`http://127.0.0.1:${local.httpPort}/nginx_status`)).text())![1]);
    const baseline = await active();
    const slow = await TestClient.open(local.url, { ca });
    slow.send({ type: 'subscribe', topic: 'flood' });
    await slow.next('subscribed');
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause(); // stops reading: a slow consumer
    const publisher = await TestClient.open(local.url, { ca });
    const data = 'x'.repeat(60_000);
    let droppedAt = 0;
    for (let i = 0; i < 2_000 && !droppedAt; i++) {
      publisher.send({ type: 'publish', topic: 'flood', data });
      await publisher.next('published');
      const metrics = await (await fetch(`http://127.0.0.1:${local.replicas[0].port}/metrics`)).text();
      if (/^ws_slow_consumer_closes_total\{[^}]*\} 1$/m.test(metrics)) droppedAt = Date.now();
    }
    assert.ok(droppedAt, 'the replica dropped the slow consumer');
    publisher.close();
    await publisher.closed;
    // The status request itself is in both counts: back at the baseline means the slow client is gone too.
    await eventually(async () => (await active()) <= baseline, 15_000, 'nginx let go of the slow client');
    const heldMs = Date.now() - droppedAt;
    // send_timeout = the write deadline (1 s) after nginx's last successful write; a second of slack.
    assert.ok(heldMs < 3_000, `nginx held the dropped consumer's socket ${heldMs} ms`);
  });
});
