import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { defineTopology, type TopologyInput } from '../../app/src/topology';
import { renderNginxConf } from '../../nginx/render';
import { makeTestCerts } from '../helpers/certs';
import { scratchDir } from '../helpers/scratch';

const certs = makeTestCerts();

/** Renders the topology for loopback and runs the real `nginx -t` on it. */
function nginxTest(input: Partial<TopologyInput>, replicas = 3) {
  const topology = defineTopology(input);
  const dir = scratchDir('ws-nginx-t-');
  const conf = renderNginxConf(topology, {
    upstreams: Array.from({ length: replicas }, (_, i) => `127.0.0.1:${9100 + i}`),
    certFile: certs.serverCert,
    keyFile: certs.serverKey,
    listenAddress: '127.0.0.1',
    httpsPort: 18443,
    httpPort: 18080,
    runtimeDir: dir,
  });
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const r = spawnSync('nginx', ['-t', '-c', join(dir, 'nginx.conf'), '-p', dir], { encoding: 'utf8' });
  assert.ok(!r.error, `nginx must be installed (apt-get install nginx-light): ${r.error}`);
  assert.equal(r.status, 0, `nginx -t failed:\n${r.stderr}\n--- config ---\n${conf}`);
  return conf;
}

// The Debian nginx here is 1.22; configs targeting newer releases must still be valid for it
// except where a directive is gated on the version.
describe('rendered configs pass the real nginx -t', () => {
  it('the default topology (least_conn)', () => {
    const conf = nginxTest({ proxy: { nginxVersion: '1.22' } });
    assert.match(conf, /least_conn;/);
    assert.match(conf, /proxy_http_version 1\.1;/);
  });
  it('round robin with 10 replicas', () => {
    const conf = nginxTest({ replicas: 10, proxy: { nginxVersion: '1.22', balancing: { strategy: 'round_robin' } } }, 10);
    assert.equal(conf.match(/^\s*server 127\.0\.0\.1:\d+ max_fails=3 fail_timeout=10s;/gm)?.length, 10);
  });
  it('ip_hash', () => void nginxTest({ proxy: { nginxVersion: '1.22', balancing: { strategy: 'ip_hash' } } }));
  it('consistent hash on a query argument', () => {
    const conf = nginxTest({ proxy: { nginxVersion: '1.22', balancing: { strategy: 'hash', hashKey: '$arg_client' } } });
    assert.match(conf, /hash \$arg_client consistent;/);
  });
  it('hash on a cookie, limits off, one worker', () =>
    void nginxTest({
      proxy: {
        nginxVersion: '1.22',
        workerProcesses: 1,
        targetConnections: 5000,
        balancing: { strategy: 'hash', hashKey: '$cookie_sid', consistent: false },
        limits: { connectionsPerAddress: 0, handshakesPerSecond: 0 },
      },
    }));
  it('a 1.30 target drops the directive that became the default in 1.29.7', () => {
    const conf = nginxTest({ proxy: { nginxVersion: '1.30' } });
    assert.doesNotMatch(conf, /^\s*proxy_http_version/m);
  });
  it('timeouts come from the topology', () => {
    const conf = nginxTest({
      server: { pingIntervalMs: 2000, pongTimeoutMs: 4000, writeTimeoutMs: 1000 },
      proxy: { nginxVersion: '1.22', readTimeoutMs: 2500, sendTimeoutMs: 2500, timeoutMarginMs: 500 },
    });
    assert.match(conf, /proxy_read_timeout 2500ms;/);
    assert.match(conf, /proxy_send_timeout 2500ms;/);
  });
});
