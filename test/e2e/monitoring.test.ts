import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { defineTopology, withoutAuth } from '../../app/src/topology';
import { LOAD_ENV } from '../../app/src/shared/load-env';
import type { LoadReport } from '../../app/src/client/report-model';
import { alertRules } from '../../monitoring/alert-rules';
import { readDashboard } from '../../monitoring/grafana-provisioning';
import { SCRAPE_JOBS } from '../../monitoring/prometheus-config';
import { monitoringTools, nginxVersion, startLocalRun } from '../../local/run';
import { metricNames, withoutGrafanaVariables } from '../helpers/promql';
import { retrying } from '../helpers/server';
import { prometheusApi, prometheusQuery } from '../helpers/prometheus';
import { scratchDir } from '../helpers/scratch';

const NGINX = nginxVersion();
assert.ok(NGINX, 'nginx must be installed for the end-to-end tests (apt-get install nginx-light)');
const MISSING = monitoringTools().missing;
assert.ok(!MISSING, `the monitoring end-to-end test needs real Prometheus: ${MISSING}`);

const CONNECTIONS = 240;

describe('Prometheus scrapes the local topology during a load run (real nginx, TLS, exporter, Prometheus)', () => {
  it('every target is up, per-replica active connections match the load client, and every dashboard and rule metric is in the scrape', async (t) => {
    // The hold outlasts every check below with a wide margin: the load_* panels need the client up.
    const topology = defineTopology(
      withoutAuth({
        replicas: 3,
        proxy: { nginxVersion: NGINX },
        // Pings every 2 s so the heartbeat RTT histogram fills during the run.
        server: { pingIntervalMs: 2_000 },
        monitoring: { scrapeIntervalMs: 1_000, evaluationIntervalMs: 1_000 },
        load: {
          stages: [{ connections: CONNECTIONS, rampRate: 400, holdMs: 35_000 }],
          topics: 4,
          publishRate: 2,
          messageRate: 2,
          maxDurationMs: 90_000,
        },
      }),
    );
    const local = await startLocalRun(topology, { monitoring: true });
    t.after(() => local.stop());
    const mon = local.monitoring!;
    const prom = mon.prometheusUrl;

    const reportFile = join(scratchDir('ws-mon-'), 'report.json');
    const client = spawn(
      process.execPath,
      [...local.clientCommand, local.url, '--ca', local.caFile, '--report', reportFile, '--metrics-port', String(mon.loadMetricsPort)],
      {
        env: { ...process.env, [LOAD_ENV.profile]: JSON.stringify(topology.load) },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let clientErr = '';
    client.stderr.on('data', (d) => (clientErr += d));
    const exited = new Promise<number>((r) => client.on('exit', (code) => r(code ?? 1)));
    t.after(() => client.kill('SIGKILL'));

    // 1. All targets up: three replicas, the exporter (nginx), the load client, Prometheus itself.
    const targets = await retrying(async () => {
      const active: any[] = (await prometheusApi(prom, '/api/v1/targets', { state: 'active' })).activeTargets;
      const down = active.filter((a) => a.health !== 'up').map((a) => `${a.labels.job}/${a.labels.instance}: ${a.health} ${a.lastError}`);
      assert.deepEqual(down, []);
      assert.equal(active.length, 6);
      return active;
    }, 20_000);
    assert.deepEqual(
      targets
        .filter((a) => a.labels.job === SCRAPE_JOBS.servers)
        .map((a) => a.labels.replica)
        .sort(),
      ['ws-server-0', 'ws-server-1', 'ws-server-2'],
    );

    // 2. Once the ramp is done, Prometheus's per-replica numbers add up to what the client holds.
    const perReplica = await retrying(async () => {
      const rows = await prometheusQuery(prom, 'sum by (replica) (ws_connections_active)');
      const byReplica = Object.fromEntries(rows.map((r) => [r.metric.replica, Number(r.value[1])]));
      const total = Object.values(byReplica).reduce((a, b) => a + b, 0);
      const [clientOpen] = await prometheusQuery(prom, 'load_connections_open');
      assert.equal(total, CONNECTIONS, JSON.stringify(byReplica));
      assert.equal(Number(clientOpen?.value[1]), CONNECTIONS, 'load_connections_open');
      return byReplica;
    }, 20_000);
    assert.equal(Object.keys(perReplica).length, 3);
    const [nginxActive] = await prometheusQuery(prom, 'nginx_connections_active');
    assert.ok(Number(nginxActive.value[1]) >= CONNECTIONS, `nginx_connections_active ${nginxActive.value[1]}`);

    // 3. Let rates and histograms gather a few scrapes, then check every name the dashboard
    // and the rules use against what Prometheus has really scraped.
    await retrying(async () => {
      const [rtt] = await prometheusQuery(prom, 'sum(ws_heartbeat_rtt_seconds_count)');
      assert.ok(Number(rtt?.value[1]) > CONNECTIONS, 'heartbeat RTTs observed');
      // rate() needs two samples in its window: every target scraped a few times since the ramp.
      const [fewest] = await prometheusQuery(prom, 'min(count_over_time(up[15s]))');
      assert.ok(Number(fewest?.value[1]) >= 4, `fewest scrapes of a target: ${fewest?.value[1]}`);
    }, 15_000);
    const scraped = new Set<string>(await prometheusApi(prom, '/api/v1/label/__name__/values'));
    const dashboard = JSON.parse(readDashboard());
    const dashboardExprs: string[] = dashboard.panels
      .flatMap((p: any) => [p, ...(p.panels ?? [])])
      .flatMap((p: any) => (p.targets ?? []).map((x: any) => x.expr));
    const ruleExprs = alertRules(topology).map((r) => r.expr);
    const used = new Set(
      [...dashboardExprs, ...ruleExprs, dashboard.templating.list[0].query.query.replace(/^label_values\((\w+).*$/, '$1')].flatMap(
        metricNames,
      ),
    );
    assert.ok(used.size > 25, `${used.size} names`);
    assert.deepEqual([...used].filter((m) => !scraped.has(m)).sort(), [], 'names used but not in the scrape');
    // ...and real Prometheus parses and evaluates every expression; the panels show data.
    const empty: string[] = [];
    for (const expr of [...dashboardExprs, ...ruleExprs]) {
      const result = await prometheusQuery(prom, withoutGrafanaVariables(expr));
      if (result.length === 0 && !/ > 0$|== 0|> \d/.test(expr)) empty.push(expr);
    }
    assert.deepEqual(empty, [], 'dashboard queries without data during a run');

    // 4. The rules are loaded and healthy.
    const groups: any[] = (await prometheusApi(prom, '/api/v1/rules')).groups;
    const rules = groups.flatMap((g) => g.rules);
    assert.equal(rules.length, alertRules(topology).length);
    assert.deepEqual(
      rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.lastError}`),
      [],
    );

    // 5. The client's own report agrees with what Prometheus saw per replica.
    assert.equal(await exited, 0, clientErr);
    const report = JSON.parse(readFileSync(reportFile, 'utf8')) as LoadReport;
    assert.equal(report.connections.reconnects, 0);
    assert.equal(report.connections.failed, 0);
    assert.deepEqual(report.connections.perReplica, perReplica);
  });
});
