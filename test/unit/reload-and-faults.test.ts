import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../app/src/shared/errors';
import { parseProxyWorker } from '../../app/src/shared/control';
import { defineTopology, reloadShedDelayMs } from '../../app/src/topology';
import { renderNginxConf } from '../../nginx/render';
import { isEven, planRound } from '../../control/rebalance';
import { Shedding } from '../../app/src/server/shedding';
import { parseWorkers, announcementTiming } from '../../control/reload';
import { checkFaults, parseFault } from '../../local/faults';
import { FaultLog, type FaultMark } from '../../app/src/client/faults';
import { failoverOf } from '../../app/src/client/failover';
import type { TimelinePoint } from '../../app/src/client/report-model';

describe('reloads: nginx workers and the shed plan', () => {
  it("sorts the master's children into current and retiring workers, ignoring everything else", () => {
    const listing = [
      '1 0 nginx: master process nginx -c /etc/nginx/ws/nginx.conf -g daemon off;',
      '7 1 nginx: worker process is shutting down',
      '8 1 nginx: worker process is shutting down',
      '30 1 nginx: worker process',
      '31 1 nginx: worker process',
      '32 1 nginx: cache manager process',
      '40 2 nginx: worker process',
      '33 1 unreadable',
      'garbage',
      '',
    ].join('\n');
    assert.deepEqual(parseWorkers(listing, 1), { master: 1, current: [30, 31, 33], retiring: [7, 8] });
  });

  it('reads the worker header nginx stamps, and nothing else', () => {
    assert.deepEqual(parseProxyWorker('ab12cd34ef56/4711'), { proxy: 'ab12cd34ef56', pid: 4711 });
    for (const bad of [undefined, '', 'host', '/12', 'host/', 'host/x', 'a b/1', ['h/1']])
      assert.equal(parseProxyWorker(bad as never), undefined, String(bad));
  });

  it("starts shedding late enough to keep connections, early enough to finish before nginx's deadline", () => {
    const t = defineTopology({ proxy: { shutdownTimeoutMs: 60_000, reload: { shedWindowMs: 20_000, marginMs: 5_000 } } });
    assert.equal(reloadShedDelayMs(t.proxy), 35_000);
    const plan = announcementTiming(t.proxy);
    assert.ok(plan.shedAfterMs + plan.windowMs + t.proxy.reload.marginMs <= t.proxy.shutdownTimeoutMs);
    assert.equal(plan.maxStaleGenerations, 2);
  });

  it('refuses a deadline shorter than the shed window plus the margin, naming the field', () => {
    assert.throws(
      () => defineTopology({ proxy: { shutdownTimeoutMs: 20_000, reload: { shedWindowMs: 20_000 } } }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.problems.some((p) => p.field === 'proxy.shutdownTimeoutMs' && /shedWindowMs \+ proxy\.reload\.marginMs = 25000/.test(p.rule)),
    );
  });
});

describe('the rendered nginx config', () => {
  const render = (input = {}) => renderNginxConf(defineTopology(input), { upstreams: ['a:1', 'b:1'], certFile: '/c', keyFile: '/k' });
  const tlsServer = (conf: string) => conf.slice(conf.indexOf('ssl_certificate '));
  const httpServer = (conf: string) => conf.slice(conf.indexOf('listen 80'), conf.indexOf('ssl_certificate '));

  it('stamps every proxied handshake with the worker that carries it', () => {
    assert.match(render(), /proxy_set_header x-ws-proxy-worker "\$hostname\/\$pid";/);
  });

  it('serves stub_status only on the internal port, not on the public TLS port', () => {
    const conf = render();
    assert.match(httpServer(conf), /location = \/nginx_status \{\s*stub_status;/);
    assert.doesNotMatch(tlsServer(conf), /stub_status/);
  });

  it("derives send_timeout and client_header_timeout from the server's write deadline", () => {
    const conf = tlsServer(render({ server: { writeTimeoutMs: 7_000 } }));
    assert.match(conf, /send_timeout 7s;/);
    assert.match(conf, /client_header_timeout 7s;/);
  });
});

describe('rebalance rounds', () => {
  it('sheds the surplus above the mean, at most maxFraction of a replica, and caps at the mean', () => {
    const plan = planRound({ a: 40, b: 40, c: 40, d: 0, e: 0 }, { maxFraction: 0.25 });
    assert.deepEqual(plan, { shed: { a: 10, b: 10, c: 10 }, holdAtMost: 24 });
    assert.deepEqual(planRound({ a: 30, b: 30, c: 30, d: 15, e: 15 }, { maxFraction: 0.25 }).shed, { a: 6, b: 6, c: 6 });
  });

  it('calls a spread even within the tolerance, or within one connection', () => {
    assert.equal(isEven({ a: 24, b: 24, c: 25, d: 23, e: 24 }, 0.1), true);
    assert.equal(isEven({ a: 40, b: 40, c: 40, d: 0, e: 0 }, 0.1), false);
    assert.equal(isEven({ a: 1, b: 0 }, 0.1), true);
    assert.equal(isEven({ a: 7 }, 0.1), true);
  });
});

describe('local faults', () => {
  it('parses kind[:n]@time', () => {
    assert.deepEqual(parseFault('reload-proxy@20s'), { id: 'reload-proxy@20s', kind: 'reload-proxy', atMs: 20_000 });
    assert.deepEqual(parseFault('kill-replica@40s'), { id: 'kill-replica@40s', kind: 'kill-replica', replica: 0, atMs: 40_000 });
    assert.equal(parseFault('kill-replica:2@1500ms').replica, 2);
    assert.deepEqual(parseFault('revoke:10@40s'), { id: 'revoke:10@40s', kind: 'revoke', count: 10, atMs: 40_000 });
  });

  it('refuses auth faults without --auth, and a revocation of more users than connect', () => {
    const run = { replicas: 3, durationMs: 60_000, connections: 100 };
    assert.match(checkFaults([parseFault('rotate-keys@20s')], run)!, /needs tokens \(--auth\)/);
    assert.match(checkFaults([parseFault('revoke:5@20s')], run)!, /needs tokens \(--auth\)/);
    assert.match(checkFaults([parseFault('revoke:101@20s')], { ...run, auth: true })!, /between 1 and the run's 100 connections/);
    assert.equal(checkFaults(['rotate-keys@20s', 'revoke:100@30s'].map(parseFault), { ...run, auth: true }), undefined);
  });

  it('refuses what it cannot execute, saying why', () => {
    assert.throws(
      () => parseFault('reboot@10s'),
      /not a fault kind \(reload-proxy, kill-replica, restart-broker, kill-proxy, stop-proxy, rotate-keys, revoke\)/,
    );
    assert.match(
      checkFaults([parseFault('restart-broker@5s')], { replicas: 2, durationMs: 60_000 })!,
      /no broker \(it is on by default: drop --no-broker\)/,
    );
    assert.equal(checkFaults([parseFault('restart-broker@5s')], { replicas: 2, durationMs: 60_000, broker: true }), undefined);
    assert.throws(() => parseFault('reload-proxy:1@10s'), /takes no :N/);
    assert.throws(() => parseFault('kill-replica'), /is not KIND\[:N\]@TIME/);
    assert.throws(() => parseFault('kill-replica@soon'), /soon/);
    const run = { replicas: 3, durationMs: 60_000 };
    assert.match(checkFaults([parseFault('kill-replica:3@10s')], run)!, /no replica 3/);
    assert.match(checkFaults([parseFault('reload-proxy@60s')], run)!, /not inside the run/);
    assert.match(checkFaults(['kill-replica:0@1s', 'kill-replica:0@2s'].map(parseFault), run)!, /once/);
    assert.match(checkFaults(['kill-replica:0@1s', 'kill-replica:1@2s', 'kill-replica:2@3s'].map(parseFault), run)!, /nothing to serve/);
    assert.equal(checkFaults(['reload-proxy@20s', 'kill-replica:1@40s'].map(parseFault), run), undefined);
  });
});

describe('proxy faults (the HA pair)', () => {
  it('are refused without the pair, and when they would take every proxy down', () => {
    const run = { replicas: 3, durationMs: 60_000 };
    assert.match(checkFaults([parseFault('kill-proxy@20s')], run)!, /needs the HA pair \(--ha\)/);
    assert.equal(checkFaults([parseFault('kill-proxy@20s')], { ...run, proxies: 2 }), undefined);
    assert.match(
      checkFaults(['kill-proxy@20s', 'stop-proxy@30s'].map(parseFault), { ...run, proxies: 2 })!,
      /leaves none to hold the virtual address/,
    );
    assert.throws(() => parseFault('kill-proxy:1@10s'), /takes no :N/);
  });

  it('own the closes on every replica, and refused handshakes only until the failover is over (plus a grace)', () => {
    const log = new FaultLog();
    log.add({ id: 'kill-replica@5s', kind: 'kill-replica', replica: 'ws-server-1' }, 0);
    assert.equal(log.on('ws-server-0', 10), undefined, 'a replica fault owns its replica only');
    assert.equal(log.refusing(10), undefined, 'a replica fault refuses no handshake');
    log.add({ id: 'kill-proxy@20s', kind: 'kill-proxy', cutsAll: true }, 20_000);
    assert.equal(log.on('ws-server-0', 20_100), 'kill-proxy@20s');
    assert.equal(log.refusing(21_000), 'kill-proxy@20s');
    log.add({ id: 'kill-proxy@20s', kind: 'kill-proxy', over: true }, 22_000);
    assert.equal(log.refusing(22_900), 'kill-proxy@20s', 'within the grace after it is over');
    assert.equal(log.refusing(23_100), undefined, 'after the grace, a refused handshake is a failure again');
    assert.equal(log.on('ws-server-0', 49_000), 'kill-proxy@20s');
    assert.equal(log.on('ws-server-0', 51_000), undefined, 'outside the attribution window');
  });

  it('report the failover: the measured time, who was dropped, when all were back, the storm', () => {
    const mark: FaultMark = {
      id: 'kill-proxy@20s',
      kind: 'kill-proxy',
      cutsAll: true,
      atSeconds: 20,
      atEpochMs: 1_000_000,
      failover: { from: 'ws-nginx-0', to: 'ws-nginx-1', seconds: 2.1 },
    };
    const point = (t: number, opensPerSecond: number, open: number) => ({ t, opensPerSecond, open }) as TimelinePoint;
    const timeline = [
      point(18, 0, 100),
      point(19, 0, 100),
      point(20, 0, 0),
      point(21, 10, 10),
      point(22, 60, 70),
      point(23, 30, 100),
      point(24, 0, 100),
      point(30, 0, 100),
    ];
    const all = failoverOf(mark, { closes: 100, errors: 7, reconnected: 100, lastReconnectEpochMs: 1_003_400 }, timeline)!;
    assert.deepEqual(
      { ...all, storm: all.storm.map((p) => p.t) },
      {
        fault: 'kill-proxy@20s',
        from: 'ws-nginx-0',
        to: 'ws-nginx-1',
        seconds: 2.1,
        dropped: 100,
        refused: 7,
        reconnected: 100,
        allReconnectedSeconds: 3.4,
        storm: [19, 20, 21, 22, 23, 24],
      },
    );
    const some = failoverOf(mark, { closes: 100, errors: 0, reconnected: 60, lastReconnectEpochMs: 1_002_000 }, timeline)!;
    assert.equal(some.allReconnectedSeconds, undefined, 'not all back: no time is claimed');
    assert.equal(failoverOf({ ...mark, cutsAll: undefined }, { closes: 1, errors: 0, reconnected: 1 }, timeline), undefined);
  });
});

describe('shedding when a proxy stops (workers: none)', () => {
  it('retires every connection of that proxy, moving up those a reload had scheduled later', async () => {
    const gone: string[] = [];
    const peer = (name: string, proxy: string, pid: number) => ({ name, via: { proxy, pid }, goAway: () => gone.push(name) });
    const peers = [peer('a', 'ws-nginx-0', 10), peer('b', 'ws-nginx-0', 11), peer('c', 'ws-nginx-1', 20)];
    const shedding = new Shedding<(typeof peers)[number]>(() => {});
    // A reload of ws-nginx-0 (new worker 12) schedules a and b far in the future.
    assert.equal(
      shedding.retire(peers, {
        proxy: 'ws-nginx-0',
        workers: [12],
        retired: [],
        shedAfterMs: 60_000,
        windowMs: 10,
        maxStaleGenerations: 2,
      }),
      2,
    );
    // ws-nginx-0 stops: its connections go now, within the window; ws-nginx-1's stay.
    assert.equal(
      shedding.retire(peers, { proxy: 'ws-nginx-0', workers: [], retired: [], shedAfterMs: 0, windowMs: 20, maxStaleGenerations: 2 }),
      2,
    );
    await new Promise((r) => setTimeout(r, 60));
    assert.deepEqual(gone.sort(), ['a', 'b']);
    // An announcement whose wave would start later moves nothing (so the check above can fail).
    assert.equal(
      shedding.retire([peers[2]], {
        proxy: 'ws-nginx-1',
        workers: [21],
        retired: [],
        shedAfterMs: 0,
        windowMs: 60_000,
        maxStaleGenerations: 2,
      }),
      1,
    );
    assert.equal(
      shedding.retire([peers[2]], {
        proxy: 'ws-nginx-1',
        workers: [22],
        retired: [],
        shedAfterMs: 30_000,
        windowMs: 10,
        maxStaleGenerations: 2,
      }),
      0,
    );
    shedding.cancel();
  });
});
