import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CONTROL_KEY_ENV, REPLICA_ID_ENV, defineTopology, fromBrokerEnv, fromServerEnv, stopGraceMs } from '../../app/src/topology';
import { brokerSpec, natsServerArgv } from '../../components/broker';
import { renderBrokerAuth } from '../../components/broker-auth';
import { SERVER_ARGV, serverSpec } from '../../components/server';
import { vrrpSpec } from '../../components/vrrp';
import { proxySpec } from '../../components/proxy';
import { CLIENT_ARGV, jobLimitSeconds, loadJobSpec } from '../../components/load-client';
import type { ComponentSpec } from '../../components/spec';
import { grafanaSpec, nginxExporterSpec, prometheusSpec } from '../../components/monitoring';
import { GRAFANA_PATHS, grafanaNameOf } from '../../monitoring/grafana-provisioning';
import { LOAD_ENV } from '../../app/src/shared/load-env';
import { containerOf } from '../../stacks/container-attributes';
import { taskContainerOf } from '../../stacks/swarm/service-attributes';

/** The URL of a spec's HTTP health check, if it has one. */
const healthUrl = (spec: ComponentSpec) => (spec.health && 'url' in spec.health ? spec.health.url : undefined);

const topology = defineTopology({ replicas: 2, server: { port: 9000, drainDeadlineMs: 12_000 } });

describe('component specs (components/)', () => {
  it('a server: its settings as environment that read back as the topology, its port, /healthz and the drain grace', () => {
    const spec = serverSpec(topology, { replicaId: 'ws-server-1', controlKeyFile: '/k' });
    assert.deepEqual(spec.argv, SERVER_ARGV.built);
    const env = spec.env!;
    const back = fromServerEnv(env);
    assert.equal(back.replicaId, 'ws-server-1');
    assert.equal(back.port, 9000);
    assert.equal(back.drainDeadlineMs, 12_000);
    assert.deepEqual(fromBrokerEnv(env)?.urls, topology.broker.urls);
    assert.equal(env[CONTROL_KEY_ENV], '/k');
    assert.deepEqual(spec.ports, { http: 9000 });
    assert.equal(healthUrl(spec), 'http://127.0.0.1:9000/healthz');
    assert.deepEqual(spec.stop, { signal: 'SIGTERM', graceMs: stopGraceMs(topology.server) });
  });

  it('a local server: from source, on its own port and address, at the broker it was given', () => {
    const spec = serverSpec(topology, {
      replicaId: 'ws-server-0',
      controlKeyFile: '/k',
      from: 'source',
      port: 4321,
      host: '127.0.0.1',
      brokerUrls: ['nats://127.0.0.1:5555'],
    });
    assert.deepEqual(spec.argv, SERVER_ARGV.source);
    const back = fromServerEnv(spec.env!);
    assert.equal(back.port, 4321);
    assert.equal(back.host, '127.0.0.1');
    assert.deepEqual(fromBrokerEnv(spec.env!)?.urls, ['nats://127.0.0.1:5555']);
    assert.equal(healthUrl(spec), 'http://127.0.0.1:4321/healthz');
  });

  it('without the broker, a server gets no broker settings', () => {
    const spec = serverSpec(defineTopology({ broker: { enabled: false } }), { replicaId: 'ws-server-0', controlKeyFile: '/k' });
    assert.equal(fromBrokerEnv(spec.env!), undefined);
  });

  it('nats-server: health on its monitoring port; in a cluster only its own JetStream counts', () => {
    const single = brokerSpec({ store: '/data', port: 4222, monitoringPort: 8222 });
    assert.deepEqual(single.argv, natsServerArgv({ store: '/data', port: 4222, monitoringPort: 8222 }));
    assert.equal(healthUrl(single), 'http://127.0.0.1:8222/healthz');
    assert.deepEqual(single.ports, { client: 4222, monitoring: 8222 });
    const clustered = brokerSpec({ store: '/data', port: 4222, monitoringPort: 8222, cluster: { name: 'c', listen: 'l', routes: 'r' } });
    assert.equal(healthUrl(clustered), 'http://127.0.0.1:8222/healthz?js-enabled-only=true');
    assert.ok(clustered.argv.includes('--routes'));
    // Without a monitoring port there is nothing to ask: a local process is waited for on its port.
    assert.equal(brokerSpec({ store: '/s', port: 4222 }).health, undefined);
  });

  it('keepalived: its bundle in its config directory, the config naming the scripts there, the capabilities VRRP needs', () => {
    const ha = defineTopology({
      network: { subnet: '198.18.1.0/24', ipRange: '198.18.1.0/25' },
      proxy: { ha: { enabled: true, virtualAddress: '198.18.1.200' } },
    });
    const spec = vrrpSpec(ha, {
      index: 1,
      proxy: 'ws-nginx-1',
      interface: 'eth0',
      configDir: '/c',
      stateDir: '/s',
      pidDir: '/p',
      statusPort: 80,
    });
    const [conf, check, notify] = spec.files!;
    assert.deepEqual(
      spec.files!.map((f) => [f.path, f.mode]),
      [
        ['/c/keepalived.conf', undefined],
        ['/c/check.sh', 0o555],
        ['/c/notify.sh', 0o555],
      ],
    );
    assert.match(conf.content, /\/bin\/bash \/c\/check\.sh/);
    assert.match(conf.content, /\/bin\/sh \/c\/notify\.sh/);
    assert.match(check.content, /\/dev\/tcp\/127.0.0.1\/80 /);
    assert.match(notify.content, /\/s\/state/);
    assert.deepEqual(spec.argv.slice(-5), ['/c/keepalived.conf', '--pid', '/p/keepalived.pid', '--vrrp_pid', '/p/keepalived-vrrp.pid']);
    assert.deepEqual(spec.capabilities, ['NET_ADMIN', 'NET_RAW']);
  });
});

describe('component specs: the proxy and the load job', () => {
  it('nginx: in the foreground, the follower beside it, SIGQUIT within the fleet grace, its backlog and descriptors', () => {
    const spec = proxySpec(topology, { config: '/n/nginx.conf', pidFile: '/run/nginx.pid', follower: '/n/follow.sh' });
    assert.deepEqual(spec.argv, ['sh', '-c', "sh /n/follow.sh & exec nginx -c /n/nginx.conf -g 'daemon off;'"]);
    assert.deepEqual(spec.stop, { signal: 'SIGQUIT', graceMs: stopGraceMs(topology.server) });
    assert.deepEqual(spec.sysctls, { 'net.core.somaxconn': String(topology.proxy.listenBacklog) });
    assert.equal(spec.openFiles, topology.proxy.maxOpenFiles);
    assert.match(spec.health && 'command' in spec.health ? spec.health.command : '', /kill -0 "\$\(cat \/run\/nginx\.pid\)"/);
    // Locally, nginx alone with its prefix (the follower is a process of its own there).
    assert.deepEqual(proxySpec(topology, { config: '/c', pidFile: '/p', prefix: '/d' }).argv, [
      'nginx',
      '-c',
      '/c',
      '-p',
      '/d',
      '-g',
      'daemon off;',
    ]);
  });

  it('the load job: bounded by timeout past the profile, its profile and reports as environment', () => {
    const spec = loadJobSpec(topology, { httpsPort: 443, caFile: '/certs/ca.crt', reportsDir: '/reports' });
    assert.deepEqual(spec.argv, ['timeout', '--kill-after=10s', `${jobLimitSeconds(topology.load)}s`, ...CLIENT_ARGV.built]);
    assert.equal(spec.env![LOAD_ENV.url], `wss://${topology.proxy.containerName}:443${topology.server.path}`);
    assert.deepEqual(JSON.parse(spec.env![LOAD_ENV.profile]), JSON.parse(JSON.stringify(topology.load)));
    assert.equal(spec.env![LOAD_ENV.report], '/reports/load-report.json');
  });
});

describe('component specs: Prometheus and the nginx exporter', () => {
  const prometheus = prometheusSpec(topology, {
    configDir: '/etc/p',
    dataDir: '/data',
    port: 9090,
    targets: {
      servers: [{ replica: 'ws-server-0', target: 'ws-server-0:9000' }],
      nginxExporter: 'e:9113',
      loadClient: 'l:9464',
      self: 'localhost:9090',
    },
  });

  it('Prometheus: its config and rules in its config directory, the retention, ready once /-/ready answers', () => {
    assert.deepEqual(
      prometheus.files!.map((f) => f.path),
      ['/etc/p/prometheus.yml', '/etc/p/rules.yml'],
    );
    assert.match(prometheus.files![0].content, /ws-server-0:9000/);
    assert.ok(prometheus.argv.includes(`--storage.tsdb.retention.time=${topology.monitoring.retention}`));
    assert.ok(prometheus.argv.includes('--web.listen-address=:9090'));
    assert.equal(healthUrl(prometheus), 'http://127.0.0.1:9090/-/ready');
  });

  it('an image whose entrypoint is the program gets only the arguments, on both container targets', () => {
    assert.equal(prometheus.imageEntrypoint, true);
    assert.deepEqual(containerOf(prometheus).command, prometheus.argv.slice(1));
    const task = taskContainerOf(prometheus);
    assert.deepEqual(task.args, prometheus.argv.slice(1));
    assert.equal(task.command, undefined);
    const exporter = nginxExporterSpec({ proxy: 'p:80', listen: ':9113', program: '/usr/bin/prometheus-nginx-exporter' });
    assert.equal(exporter.argv[0], '/usr/bin/prometheus-nginx-exporter');
    assert.deepEqual(containerOf(exporter).command, ['--nginx.scrape-uri=http://p:80/nginx_status', '--web.listen-address=:9113']);
    assert.equal('stopSignal' in containerOf(exporter), false, "no stop of its own: the target's default");
  });
});

describe('component specs: Grafana', () => {
  const grafana = grafanaSpec(topology, { prometheusUrl: 'http://prom:9090' });

  it('its provisioning where the image reads it, the data source at the given URL, healthy once /api/health answers', () => {
    assert.deepEqual(
      grafana.files!.map((f) => f.path),
      [
        `${GRAFANA_PATHS.datasources}/prometheus.yml`,
        `${GRAFANA_PATHS.dashboardProviders}/ws-notifications.yml`,
        `${GRAFANA_PATHS.dashboards}/ws-notifications.json`,
      ],
    );
    assert.match(grafana.files![0].content, /url: http:\/\/prom:9090/);
    assert.equal(grafana.env!.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH, grafana.files![2].path);
    assert.equal(healthUrl(grafana), 'http://127.0.0.1:3000/api/health');
  });

  it('the image runs with no arguments: the container gets no command; its files map back to the host names', () => {
    assert.equal('command' in containerOf(grafana), false);
    assert.deepEqual(
      grafana.files!.map((f) => grafanaNameOf(f.path)),
      ['datasources/prometheus.yml', 'dashboards/ws-notifications.yml', 'dashboard-json/ws-notifications.json'],
    );
    assert.throws(() => grafanaNameOf('/etc/passwd'), /not in a directory Grafana's container mounts/);
  });
});

describe('the targets translate a spec (containerOf, taskContainerOf)', () => {
  const spec = serverSpec(topology, { replicaId: 'ws-server-0', controlKeyFile: '/k' });

  it('into a docker_container: command, sorted environment, stop and grace, health check', () => {
    const c = containerOf(spec);
    assert.deepEqual(c.command, SERVER_ARGV.built);
    assert.deepEqual(c.env, [...c.env!].sort());
    assert.ok(c.env!.includes(`${REPLICA_ID_ENV}=ws-server-0`), JSON.stringify(c.env));
    assert.equal(c.stopSignal, 'SIGTERM');
    assert.equal(c.stopTimeout, Math.ceil(stopGraceMs(topology.server) / 1000));
    assert.equal(c.healthcheck?.test.at(-1)?.includes('http://127.0.0.1:9000/healthz'), true);
    assert.equal('capabilities' in c, false);
  });

  it("into a service's task: through a shell when asked, so Swarm's templated variables expand", () => {
    const broker = brokerSpec({ store: '/data', port: 4222, serverName: '"$NAME"' });
    const t = taskContainerOf({ ...broker, env: { NAME: '{{.Task.Slot}}' } }, { shell: true, prelude: 'mkdir -p /x && ' });
    assert.deepEqual(t.command?.slice(0, 2), ['sh', '-c']);
    assert.match(t.command?.[2] ?? '', /^mkdir -p \/x && exec nats-server .*--server_name "\$NAME"/);
    assert.deepEqual(t.env, { NAME: '{{.Task.Slot}}' });
    assert.equal(t.stopGracePeriod, '10s');
    assert.deepEqual(taskContainerOf(spec).command, SERVER_ARGV.built);
  });
});

describe('the broker users (components/broker-auth.ts)', () => {
  it('derive the permissions from the subject prefix and refuse a password that could break the config', () => {
    const text = renderBrokerAuth({
      subjectPrefix: 'alerts',
      stream: 'S',
      passwords: { replica: 'a'.repeat(32), backend: 'b'.repeat(32) },
    });
    assert.match(
      text,
      /user: "ws-backend", password: "b{32}", permissions: \{ publish: \{ allow: \["alerts\.>"\] \}, subscribe: \{ allow: \["_INBOX_ws-backend\.>"\] \}/,
    );
    assert.match(text, /"\$KV\.S_REVOKED\.>"/);
    assert.throws(
      () => renderBrokerAuth({ subjectPrefix: 'a', stream: 'S', passwords: { replica: 'x" }, { user: "y', backend: 'b' } }),
      /not a safe/,
    );
    assert.deepEqual(brokerSpec({ store: '/s', port: 4222, authFile: '/run/secrets/nats-auth.conf' }).argv.slice(0, 3), [
      'nats-server',
      '--config',
      '/run/secrets/nats-auth.conf',
    ]);
  });
});
