import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { defineTopology, OFFLINE_BASE_IMAGES, type TopologyInput } from '../../app/src/topology';
import { ConfigError } from '../../app/src/shared/errors';
import { createMetrics } from '../../app/src/server/metrics';
import { LoadMetrics } from '../../app/src/client/metrics';
import { renderPrometheusConfig, SCRAPE_JOBS } from '../../monitoring/prometheus-config';
import { alertRules } from '../../monitoring/alert-rules';
import { DATASOURCE_UID, readDashboard } from '../../monitoring/grafana-provisioning';
import { renderDashboard } from '../../monitoring/grafana/dashboard';
import { containerNamed, resourcesOf, synth, writtenFiles } from '../helpers/synth';
import { metricNames } from '../helpers/promql';
import { makeUniqueId } from 'cdktf/lib/private/unique';
import { ADDRESSES_BEFORE_0_2 } from '../../stacks/monitoring/component';

const render = (replicas: number, input: Partial<TopologyInput> = {}) =>
  parse(
    renderPrometheusConfig(defineTopology({ ...input, replicas }), {
      servers: Array.from({ length: replicas }, (_, i) => ({ replica: `ws-server-${i}`, target: `ws-server-${i}:8080` })),
      nginxExporter: 'ws-nginx-exporter:9113',
      loadClient: 'ws-load-client:9464',
      self: 'localhost:9090',
    }),
  );
const job = (config: any, name: string) => config.scrape_configs.find((j: any) => j.job_name === name);

describe('the Prometheus scrape config', () => {
  for (const n of [1, 3, 10]) {
    it(`${n} replicas give ${n} server targets, each labelled with its replica`, () => {
      const servers = job(render(n), SCRAPE_JOBS.servers);
      assert.deepEqual(
        servers.static_configs.map((c: any) => c.targets[0]),
        Array.from({ length: n }, (_, i) => `ws-server-${i}:8080`),
      );
      assert.deepEqual(
        servers.static_configs.map((c: any) => c.labels.replica),
        Array.from({ length: n }, (_, i) => `ws-server-${i}`),
      );
    });
  }

  it('scrapes the exporter, the load client and itself, and loads the rules', () => {
    const config = render(3);
    assert.deepEqual(job(config, SCRAPE_JOBS.nginx).static_configs[0].targets, ['ws-nginx-exporter:9113']);
    assert.deepEqual(job(config, SCRAPE_JOBS.loadClient).static_configs[0].targets, ['ws-load-client:9464']);
    assert.deepEqual(job(config, SCRAPE_JOBS.prometheus).static_configs[0].targets, ['localhost:9090']);
    assert.deepEqual(config.rule_files, ['rules.yml']);
  });

  it('takes its intervals from the topology, with the timeout never above the interval', () => {
    assert.deepEqual(render(1).global, {
      scrape_interval: '5s',
      scrape_timeout: '5s',
      evaluation_interval: '5s',
      external_labels: { stack: 'ws-notifications' },
    });
    const slow = render(1, { monitoring: { scrapeIntervalMs: 30_000, evaluationIntervalMs: 60_000 } }).global;
    assert.equal(slow.scrape_interval, '30s');
    assert.equal(slow.scrape_timeout, '10s');
    assert.equal(slow.evaluation_interval, '1m');
  });
});

describe('monitoring settings are validated', () => {
  const refuses = (input: Partial<TopologyInput>, field: string, rule: RegExp) =>
    assert.throws(
      () => defineTopology(input),
      (e: unknown) => e instanceof ConfigError && e.problems.some((i) => i.field === field && rule.test(i.rule)),
    );

  it('refuses rules evaluated faster than samples are scraped', () =>
    refuses(
      { monitoring: { scrapeIntervalMs: 10_000, evaluationIntervalMs: 5_000 } },
      'monitoring.evaluationIntervalMs',
      /at least monitoring\.scrapeIntervalMs/,
    ));
  it('refuses a published port used twice, naming both', () => {
    refuses({ monitoring: { prometheusPort: 443 } }, 'monitoring.prometheusPort', /already used by proxy\.httpsPort/);
    refuses({ monitoring: { grafanaPort: 9090 } }, 'monitoring.grafanaPort', /already used by monitoring\.prometheusPort/);
  });
  it('refuses a retention that is not a Prometheus duration', () =>
    refuses({ monitoring: { retention: '7 days' } }, 'monitoring.retention', /Prometheus duration/));
  it('refuses a capacity ratio above 1', () =>
    refuses({ monitoring: { alerts: { proxyCapacityRatio: 1.5 } } }, 'monitoring.alerts.proxyCapacityRatio', /1/));
  it('does not check ports of monitoring that is off', () =>
    assert.doesNotThrow(() => defineTopology({ monitoring: { enabled: false, prometheusPort: 443 } })));
});

describe('the monitoring stack', () => {
  const s = synth();

  it('runs Prometheus, the nginx exporter and Grafana by default', () => {
    for (const name of ['ws-prometheus', 'ws-nginx-exporter', 'ws-grafana']) containerNamed(s, name);
    const pulled = resourcesOf(s, 'docker_image')
      .filter((i) => !i.build)
      .map((i) => i.name)
      .sort();
    // (and the broker's)
    assert.deepEqual(pulled, [
      'grafana/grafana:11.3.0',
      'nats:2.10-alpine',
      'nginx/nginx-prometheus-exporter:1.3.0',
      'prom/prometheus:v2.55.1',
    ]);
  });

  it('publishes Prometheus and Grafana on 127.0.0.1 only', () => {
    assert.deepEqual(containerNamed(s, 'ws-prometheus').ports, [{ internal: 9090, external: 9090, ip: '127.0.0.1' }]);
    assert.deepEqual(containerNamed(s, 'ws-grafana').ports, [{ internal: 3000, external: 3000, ip: '127.0.0.1' }]);
    assert.equal(containerNamed(s, 'ws-nginx-exporter').ports, undefined);
  });

  it('points the exporter at the proxy stub_status inside the network', () => {
    assert.ok(containerNamed(s, 'ws-nginx-exporter').command.includes('--nginx.scrape-uri=http://ws-nginx:80/nginx_status'));
  });

  it('renders the scrape targets from the replica count, without touching the Prometheus container', () => {
    const targets = (n: number) =>
      parse(writtenFiles(synth({ replicas: n }), 'monitoring_prometheus_config')['prometheus.yml']).scrape_configs[0].static_configs.length;
    assert.deepEqual([1, 3, 7].map(targets), [1, 3, 7]);
    const containers = [1, 7].map((n) => containerNamed(synth({ replicas: n }), 'ws-prometheus'));
    assert.deepEqual(containers[0], containers[1]);
    const reloads = [1, 7].map(
      (n) =>
        Object.entries(synth({ replicas: n }).json.resource.terraform_data).find(([id]) =>
          id.startsWith('monitoring_prometheus_reload'),
        )![1],
    );
    assert.notDeepEqual(reloads[0].triggers_replace, reloads[1].triggers_replace, 'a new config reloads Prometheus');
    assert.match(reloads[0].provisioner[0]['local-exec'].command, /promtool check config .* && docker kill --signal=HUP/);
  });

  it('provisions Grafana with the data source and the dashboard from the repository', () => {
    const files = writtenFiles(s, 'monitoring_grafana_config');
    assert.equal(files['dashboard-json/ws-notifications.json'], readDashboard());
    const ds = parse(files['datasources/prometheus.yml']).datasources[0];
    assert.equal(ds.uid, DATASOURCE_UID);
    assert.equal(ds.url, 'http://ws-prometheus:9090');
  });

  it('has the load job serve /metrics and start once Prometheus scrapes', () => {
    const loadJob = containerNamed(s, 'ws-load-client');
    assert.ok(loadJob.env.includes('LOAD_METRICS_PORT=9464'));
    assert.ok(loadJob.depends_on.some((d: string) => d.startsWith('terraform_data.monitoring_prometheus_reload')));
    const config = parse(writtenFiles(s, 'monitoring_prometheus_config')['prometheus.yml']);
    assert.deepEqual(job(config, SCRAPE_JOBS.loadClient).static_configs[0].targets, ['ws-load-client:9464']);
  });

  it('can be switched off in the topology', () => {
    const off = synth({ monitoring: { enabled: false } });
    const names = resourcesOf(off, 'docker_container').map((c) => c.name);
    assert.ok(!names.some((n: string) => ['ws-prometheus', 'ws-nginx-exporter', 'ws-grafana'].includes(n)), names.join());
    assert.ok(!containerNamed(off, 'ws-load-client').env.some((e: string) => e.startsWith('LOAD_METRICS_PORT=')));
    assert.equal(off.json.output.prometheus_url, undefined);
  });

  it('offline base images replace Prometheus and the exporter and leave Grafana out', () => {
    const offline = synth({}, { BASE_IMAGES: 'offline' });
    const pulled = resourcesOf(offline, 'docker_image')
      .filter((i) => !i.build)
      .map((i) => i.name)
      .sort();
    assert.deepEqual(pulled, [OFFLINE_BASE_IMAGES.nginxExporter, OFFLINE_BASE_IMAGES.prometheus, OFFLINE_BASE_IMAGES.nats].sort());
    assert.ok(!resourcesOf(offline, 'docker_container').some((c) => c.name === 'ws-grafana'));
  });
});

describe('the alert rules', () => {
  const rules = alertRules(
    defineTopology({
      proxy: { targetConnections: 20_000, workerProcesses: 3 },
      monitoring: { alerts: { abnormalClosesPerSecond: 3, forMs: 120_000 } },
    }),
  );
  const byName = Object.fromEntries(rules.map((r) => [r.alert, r]));

  it('cover the failures the design worries about', () => {
    for (const name of [
      'WsReplicaDown',
      'NginxDown',
      'WsAbnormalClosesRising',
      'WsOversizeMessages',
      'WsHandshakeRejectionSpike',
      'WsSlowConsumers',
      'NginxNearCapacity',
      'WsBrokerDown',
      'WsBrokerConsumerLag',
      'WsAuthFailureSpike',
    ]) {
      assert.ok(byName[name], name);
    }
  });
  it('take thresholds and durations from the topology', () => {
    assert.match(byName.WsAbnormalClosesRising.expr, /code="1006".*> 3$/);
    assert.match(byName.NginxNearCapacity.expr, /> 18000$/);
    assert.ok(rules.every((r) => r.for === '2m'));
  });
});

describe('the dashboard', () => {
  const dashboard = JSON.parse(readDashboard());
  const panels: any[] = dashboard.panels.flatMap((p: any) => [p, ...(p.panels ?? [])]);
  const graphs = panels.filter((p) => p.type !== 'row');
  const exprs: string[] = graphs.flatMap((p) => p.targets.map((t: any) => t.expr));
  const used = new Set(exprs.flatMap(metricNames));

  it('is what dashboard.ts builds (typed with @grafana/schema): run `npm run dashboard` after changing it', () => {
    assert.equal(readDashboard(), renderDashboard());
  });

  it('has unique panel ids and a fixed uid', () => {
    assert.equal(dashboard.uid, 'ws-notifications');
    assert.equal(new Set(panels.map((p) => p.id)).size, panels.length);
  });

  it('queries the provisioned data source in every panel and target', () => {
    for (const p of graphs) {
      assert.equal(p.datasource?.uid, DATASOURCE_UID, p.title);
      assert.ok(p.targets.length > 0, p.title);
      assert.equal(new Set(p.targets.map((t: any) => t.refId)).size, p.targets.length, `${p.title}: refIds`);
      for (const t of p.targets) {
        assert.equal(t.datasource?.uid ?? DATASOURCE_UID, DATASOURCE_UID, p.title);
        assert.ok(typeof t.expr === 'string' && t.expr.length > 0, p.title);
      }
    }
    assert.equal(dashboard.templating.list[0].datasource.uid, DATASOURCE_UID);
  });

  it('lays panels out on the 24-column grid without overlaps', () => {
    const boxes = panels.map((p) => ({ title: p.title, ...p.gridPos }));
    for (const b of boxes) assert.ok(b.x >= 0 && b.w > 0 && b.x + b.w <= 24 && b.h > 0, b.title);
    for (const [i, a] of boxes.entries()) {
      for (const b of boxes.slice(i + 1)) {
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
        assert.ok(!overlap, `${a.title} overlaps ${b.title}`);
      }
    }
  });

  it('shows everything the issue lists', () => {
    const required = [
      'ws_connections_active',
      'nginx_connections_active',
      'ws_connections_opened_total',
      'ws_connections_closed_total',
      'ws_handshake_rejections_total',
      'ws_messages_received_total',
      'ws_messages_sent_total',
      'ws_received_bytes_total',
      'ws_sent_bytes_total',
      'ws_message_size_bytes_bucket',
      'ws_heartbeat_rtt_seconds_bucket',
      'ws_slow_consumer_closes_total',
      'ws_oversize_messages_total',
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'load_rtt_seconds',
      'load_errors_total',
    ];
    assert.deepEqual(
      required.filter((m) => !used.has(m)),
      [],
    );
    assert.ok(
      exprs.some((e) => /ws_connections_closed_total/.test(e) && /by \(code\)/.test(e)),
      'closes by code',
    );
    assert.ok(
      exprs.some((e) => /sum by \(replica\) \(ws_connections_active/.test(e)),
      'active per replica',
    );
  });

  it('uses only ws_* and load_* names the code defines (the real scrape checks the rest)', async () => {
    const server = await createMetrics('x').registry.getMetricsAsJSON();
    const load = await new LoadMetrics().registry.getMetricsAsJSON();
    const defined = new Set(
      [...server, ...load].flatMap((m) =>
        String(m.type) === 'histogram' ? [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`] : [m.name],
      ),
    );
    const ours = [...used].filter((m) => /^(ws|load)_/.test(m));
    assert.ok(ours.length > 15);
    assert.deepEqual(
      ours.filter((m) => !defined.has(m)),
      [],
    );
  });
});

describe('the metric-name scanner', () => {
  it('finds metric names and skips functions, labels, ranges and variables', () => {
    assert.deepEqual(
      metricNames('histogram_quantile(0.99, sum by (le) (rate(ws_heartbeat_rtt_seconds_bucket{replica=~"$replica"}[$__rate_interval])))'),
      ['ws_heartbeat_rtt_seconds_bucket'],
    );
    assert.deepEqual(metricNames('up{job="ws-server"} == 0 or nginx_up == 0'), ['nginx_up', 'up']);
    assert.deepEqual(metricNames('sum(rate(a_total[5m])) / ignoring(x) b > 1e3'), ['a_total', 'b']);
  });
});

describe('monitoring resources keep their objects across the split into constructs', () => {
  it('each one is moved from the address it had when the Monitoring construct held them directly', () => {
    // cdktf's own id function, on the construct paths of the old layout (below the stack).
    const before = (type: string, ...path: string[]) => `${type}.${makeUniqueId(['monitoring', ...path])}`;
    const old = [
      before('docker_image', 'prometheus-image'),
      before('docker_container', 'prometheus'),
      before('terraform_data', 'prometheus-config', 'files'),
      before('terraform_data', 'prometheus-reload'),
      before('docker_image', 'nginx-exporter-image'),
      before('docker_container', 'nginx-exporter'),
      before('docker_image', 'grafana-image'),
      before('docker_container', 'grafana'),
      before('terraform_data', 'grafana-config', 'files'),
    ];
    const s = synth({ replicas: 3 });
    const moved = s.json.moved ?? [];
    assert.deepEqual(moved.map((m) => m.from).sort(), [...old].sort());
    for (const { from, to } of moved) {
      const [type, name] = to.split('.');
      assert.ok(s.json.resource[type][name], `${to} exists`);
      assert.equal(type, from.split('.')[0]);
      assert.ok(!s.json.resource[type][from.split('.')[1]], `${from} is gone from the configuration`);
      assert.match(name, /^monitoring_(prometheus|exporter|grafana)_/);
    }
    assert.deepEqual(Object.values(ADDRESSES_BEFORE_0_2).sort(), [...old].sort());
  });
});
