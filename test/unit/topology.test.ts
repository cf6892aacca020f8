import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../app/src/shared/errors';
import { defineTopology, derivedWorkerConnections, fromServerEnv, toServerEnv, type TopologyInput } from '../../app/src/topology';

/** Asserts the input is refused with a message naming `field` and containing `rule`. */
function refused(input: Partial<TopologyInput> | Record<string, unknown>, field: string, rule: RegExp, env: Record<string, string> = {}) {
  assert.throws(
    () => defineTopology(input as Partial<TopologyInput>, env),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
      const problem = error.problems.find((p) => p.field === field);
      assert.ok(problem, `expected a problem on ${field}, got: ${error.message}`);
      assert.match(problem.rule, rule);
      assert.match(error.message, new RegExp(field.replace(/\./g, '\\.')));
      return true;
    },
  );
}

describe('topology defaults', () => {
  const t = defineTopology();
  it('follows the seed where the seed said something', () => {
    assert.equal(t.replicas, 3);
    assert.equal(t.server.path, '/ws-notifications');
    assert.equal(t.server.pingIntervalMs, 30_000);
    assert.equal(t.server.pongTimeoutMs, 60_000);
    assert.equal(t.server.writeTimeoutMs, 15_000);
    assert.equal(t.server.maxMessageBytes, 64 * 1024);
    assert.equal(t.proxy.readTimeoutMs, 90_000);
    assert.equal(t.proxy.httpsPort, 443);
    assert.equal(t.proxy.httpPort, 80);
  });
  it('derives worker_connections from two descriptors per target connection', () => {
    const wc = derivedWorkerConnections(t.proxy);
    assert.ok(wc * t.proxy.workerProcesses >= 2 * t.proxy.targetConnections);
    assert.ok(wc <= t.proxy.maxOpenFiles);
  });
  it('merges partial nested input with defaults', () => {
    const custom = defineTopology({
      server: { pingIntervalMs: 1000, pongTimeoutMs: 2000, writeTimeoutMs: 1000 },
      proxy: { readTimeoutMs: 20_000, sendTimeoutMs: 20_000 },
    });
    assert.equal(custom.server.pingIntervalMs, 1000);
    assert.equal(custom.server.port, 8080);
    assert.equal(custom.proxy.httpsPort, 443);
  });
});

describe('REPLICAS overrides the code value', () => {
  it('accepts a whole number', () => {
    assert.equal(defineTopology({ replicas: 3 }, { REPLICAS: '5' }).replicas, 5);
    assert.equal(defineTopology({ replicas: 4 }, {}).replicas, 4);
  });
  it('refuses 0', () => refused({}, 'replicas', /at least 1/, { REPLICAS: '0' }));
  it('refuses text', () => refused({}, 'replicas', /not a whole number/, { REPLICAS: 'abc' }));
  it('refuses fractions and too many', () => {
    refused({}, 'replicas', /not a whole number/, { REPLICAS: '2.5' });
    refused({ replicas: 65 }, 'replicas', /at most 64/);
    refused({ replicas: 1.5 }, 'replicas', /whole number/);
  });
});

describe('every rule has a failing case', () => {
  it('pong timeout must exceed the ping interval', () =>
    refused({ server: { pingIntervalMs: 30_000, pongTimeoutMs: 30_000 } }, 'server.pongTimeoutMs', /must exceed server\.pingIntervalMs/));
  it('proxy read timeout must exceed ping interval plus margin', () =>
    refused({ proxy: { readTimeoutMs: 35_000 } }, 'proxy.readTimeoutMs', /pingIntervalMs \+ proxy\.timeoutMarginMs = 40000/));
  it('proxy send timeout must exceed ping interval plus margin', () =>
    refused({ proxy: { sendTimeoutMs: 30_000 } }, 'proxy.sendTimeoutMs', /at least/));
  it('write timeout must be below the pong timeout', () =>
    refused({ server: { writeTimeoutMs: 60_000 } }, 'server.writeTimeoutMs', /below server\.pongTimeoutMs/));
  it('drain window must fit in the drain deadline', () =>
    refused({ server: { drainWindowMs: 20_000 } }, 'server.drainWindowMs', /below server\.drainDeadlineMs/));
  it('hash needs a key, and only hash takes one', () => {
    refused({ proxy: { balancing: { strategy: 'hash' } } }, 'proxy.balancing.hashKey', /required/);
    refused({ proxy: { balancing: { strategy: 'least_conn', hashKey: '$arg_x' } } }, 'proxy.balancing.hashKey', /only applies/);
    refused({ proxy: { balancing: { strategy: 'hash', hashKey: 'client' } } }, 'proxy.balancing.hashKey', /nginx variable/);
  });
  it('unknown strategies are refused', () =>
    refused({ proxy: { balancing: { strategy: 'random' } } }, 'proxy.balancing.strategy', /round_robin/));
  it('worker connections must cover two descriptors per target connection', () =>
    refused({ proxy: { workerConnections: 5000 } }, 'proxy.workerConnections', /2 × proxy\.targetConnections \(20000\)/));
  it('a worker must fit in the open-file ceiling', () =>
    refused(
      { proxy: { targetConnections: 30_000, workerProcesses: 2 }, load: { stages: [{ connections: 10, rampRate: 10, holdMs: 0 }] } },
      'proxy.workerProcesses',
      /maxOpenFiles/,
    ));
  it('ports must differ', () => refused({ proxy: { httpPort: 443 } }, 'proxy.httpPort', /differ/));
  it('the broker is on by default, and its monitoring port is one more published port', () => {
    assert.equal(defineTopology({}).broker.enabled, true);
    refused({ broker: { monitoringPort: 443 } }, 'broker.monitoringPort', /already used by proxy\.httpsPort/);
    assert.equal(defineTopology({ broker: { enabled: false, monitoringPort: 443 } }).broker.enabled, false, 'no broker, no port');
  });
  it("proxy.ha: a virtual address in a known subnet, outside the containers' range, not the gateway; distinct priorities", () => {
    const net = { subnet: '198.18.0.0/24', ipRange: '198.18.0.128/25' };
    const ha = (extra: Record<string, unknown>, network: Record<string, unknown> = net) => ({
      network,
      proxy: { ha: { enabled: true, virtualAddress: '198.18.0.10', ...extra } },
    });
    assert.equal(defineTopology(ha({})).proxy.ha.enabled, true);
    refused(ha({ virtualAddress: undefined }), 'proxy.ha.virtualAddress', /required/);
    refused(ha({}, {}), 'network.subnet', /required with proxy\.ha/);
    refused(ha({ virtualAddress: '198.19.0.10' }), 'proxy.ha.virtualAddress', /outside network\.subnet/);
    refused(ha({ virtualAddress: '198.18.0.200' }), 'proxy.ha.virtualAddress', /inside network\.ipRange/);
    refused(ha({ virtualAddress: '198.18.0.1' }), 'proxy.ha.virtualAddress', /gateway/);
    refused(ha({ virtualAddress: '198.18.0.255' }), 'proxy.ha.virtualAddress', /broadcast/);
    refused(ha({}, { subnet: '198.18.0.0/24' }), 'network.ipRange', /required with proxy\.ha/);
    refused(ha({ priorities: [100, 100] }), 'proxy.ha.priorities', /distinct/);
    refused(ha({ stopDrainMs: 2000 }), 'proxy.ha.stopDrainMs', /shorter than the check's demotion \(fall 2 × intervalMs 1000\)/);
    assert.doesNotThrow(() => defineTopology(ha({ stopDrainMs: 2000, check: { fall: 3 } })));
    refused(ha({ priorities: [150, 100, 50] }), 'proxy.ha.priorities', /one priority per proxy/);
    refused(ha({ check: { intervalMs: 1500 } }), 'proxy.ha.check.intervalMs', /whole seconds/);
    refused(ha({ advertIntervalMs: 1005 }), 'proxy.ha.advertIntervalMs', /centiseconds/);
    refused({ network: { subnet: '198.18.0.0/24', ipRange: '10.0.0.0/25' } }, 'network.ipRange', /inside network\.subnet/);
    refused({ network: { subnet: '198.18.0.0/33' } }, 'network.subnet', /IPv4 block/);
  });
  it('routing the publish API through the proxy needs the key file', () => {
    refused({ proxy: { publishApi: true } }, 'proxy.publishApi', /server\.apiKeyFile/);
    assert.equal(defineTopology({ proxy: { publishApi: true }, server: { apiKeyFile: '/run/secrets/api-key' } }).proxy.publishApi, true);
  });
  it('the load peak must fit the proxy and the fleet', () => {
    refused({ load: { stages: [{ connections: 20_000, rampRate: 100, holdMs: 0 }] } }, 'load.stages', /proxy\.targetConnections/);
    refused({ replicas: 1, server: { maxConnections: 100 } }, 'load.stages', /maxConnections × replicas \(100\)/);
  });
  it('the load must fit the per-address limits', () => {
    refused({ proxy: { limits: { connectionsPerAddress: 100 } } }, 'load.stages', /connectionsPerAddress/);
    refused({ proxy: { limits: { handshakesPerSecond: 100 } } }, 'load.stages', /handshakesPerSecond/);
  });
  it('payloads must fit the message limit', () =>
    refused({ load: { payload: { kind: 'fixed', bytes: 70_000 } } }, 'load.payload', /maxMessageBytes/));
  it('compression modes must agree', () => {
    refused({ server: { compression: 'required' } }, 'load.compression', /required/);
    refused({ server: { compression: 'off' }, load: { compression: true } }, 'load.compression', /off/);
  });
  it('unknown fields are refused, not ignored', () => refused({ replica: 3 }, '(root)', /replica/));
  it('bad paths and versions are refused', () => {
    refused({ server: { path: 'ws' } }, 'server.path', /absolute URL path/);
    refused({ proxy: { nginxVersion: 'latest' } }, 'proxy.nginxVersion', /version/);
  });
});

describe('server settings travel as environment variables', () => {
  it('round-trips through env', () => {
    const t = defineTopology({
      server: { allowedOrigins: ['https://a.example', 'https://b.example'], compression: 'required' },
      load: { compression: true },
    });
    const back = fromServerEnv(toServerEnv(t.server, 'ws-server-7'));
    assert.equal(back.replicaId, 'ws-server-7');
    const { replicaId, ...settings } = back;
    assert.deepEqual(settings, t.server);
  });
  it('names the variable of a bad value', () => {
    assert.throws(() => fromServerEnv({ WS_PING_INTERVAL_MS: 'soon' }), /WS_PING_INTERVAL_MS/);
    assert.throws(() => fromServerEnv({ WS_COMPRESSION: 'maybe' }), /WS_COMPRESSION/);
  });
});
