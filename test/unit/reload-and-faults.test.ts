import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../app/src/shared/errors';
import { parseProxyWorker } from '../../app/src/shared/control';
import { defineTopology, reloadShedDelayMs } from '../../app/src/topology';
import { renderNginxConf } from '../../nginx/render';
import { isEven, planRound } from '../../control/rebalance';
import { parseWorkers, reloadPlan } from '../../control/reload';
import { checkFaults, parseFault } from '../../local/faults';

describe('reloads: nginx workers and the shed plan', () => {
  it('sorts the master\'s children into current and retiring workers, ignoring everything else', () => {
    const listing = [
      '1 0 nginx: master process nginx -c /etc/nginx/ws/nginx.conf -g daemon off;',
      '7 1 nginx: worker process is shutting down',
      '8 1 nginx: worker process is shutting down',
      '30 1 nginx: worker process',
      '31 1 nginx: worker process',
      '32 1 nginx: cache manager process',
      '40 2 nginx: worker process',
      'garbage',
      '',
    ].join('\n');
    assert.deepEqual(parseWorkers(listing, 1), { master: 1, current: [30, 31], retiring: [7, 8] });
  });

  it('reads the worker header nginx stamps, and nothing else', () => {
    assert.deepEqual(parseProxyWorker('ab12cd34ef56/4711'), { proxy: 'ab12cd34ef56', pid: 4711 });
    for (const bad of [undefined, '', 'host', '/12', 'host/', 'host/x', 'a b/1', ['h/1']]) assert.equal(parseProxyWorker(bad as never), undefined, String(bad));
  });

  it('starts shedding late enough to keep connections, early enough to finish before nginx\'s deadline', () => {
    const t = defineTopology({ proxy: { shutdownTimeoutMs: 60_000, reload: { shedWindowMs: 20_000, marginMs: 5_000 } } });
    assert.equal(reloadShedDelayMs(t.proxy), 35_000);
    const plan = reloadPlan(t.proxy);
    assert.ok(plan.shedAfterMs + plan.windowMs + t.proxy.reload.marginMs <= t.proxy.shutdownTimeoutMs);
    assert.equal(plan.maxStaleGenerations, 2);
  });

  it('refuses a deadline shorter than the shed window plus the margin, naming the field', () => {
    assert.throws(
      () => defineTopology({ proxy: { shutdownTimeoutMs: 20_000, reload: { shedWindowMs: 20_000 } } }),
      (e: unknown) => e instanceof ConfigError && e.problems.some((p) => p.field === 'proxy.shutdownTimeoutMs' && /shedWindowMs \+ proxy\.reload\.marginMs = 25000/.test(p.rule)),
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

  it('derives send_timeout and client_header_timeout from the server\'s write deadline', () => {
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
    assert.deepEqual(parseFault('reload-proxy@20s'), { id: 'reload-proxy@20s', kind: 'reload-proxy', replica: undefined, atMs: 20_000 });
    assert.deepEqual(parseFault('kill-replica@40s'), { id: 'kill-replica@40s', kind: 'kill-replica', replica: 0, atMs: 40_000 });
    assert.equal(parseFault('kill-replica:2@1500ms').replica, 2);
  });

  it('refuses what it cannot execute, saying why', () => {
    assert.throws(() => parseFault('reboot@10s'), /not a fault kind \(reload-proxy, kill-replica, restart-broker\)/);
    assert.match(checkFaults([parseFault('restart-broker@5s')], { replicas: 2, durationMs: 60_000 })!, /no broker \(it is on by default: drop --no-broker\)/);
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
