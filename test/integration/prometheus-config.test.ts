import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { defineTopology, type TopologyInput } from '../../app/src/topology';
import { alertRules } from '../../monitoring/alert-rules';
import { renderPrometheusFiles } from '../../monitoring/prometheus';
import { scratchDir } from '../helpers/scratch';

/** Runs the real promtool (Debian's prometheus package). */
function promtool(args: string[], cwd: string) {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8' });
  assert.ok(!r.error, `promtool must be installed (apt-get install prometheus): ${r.error}`);
  return r;
}

function writeConfig(input: Partial<TopologyInput>) {
  const topology = defineTopology(input);
  const dir = scratchDir('ws-prom-');
  const files = renderPrometheusFiles(topology, {
    servers: Array.from({ length: topology.replicas }, (_, i) => ({ replica: `ws-server-${i}`, target: `127.0.0.1:${9200 + i}` })),
    nginxExporter: '127.0.0.1:9113',
    loadClient: '127.0.0.1:9464',
    self: '127.0.0.1:9090',
  });
  // The names the tests use below are the names the stack writes.
  assert.deepEqual(Object.keys(files).sort(), ['prometheus.yml', 'rules.yml']);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return { dir, topology };
}

describe('promtool accepts what we render', () => {
  const cases: [string, Partial<TopologyInput>][] = [
    ['defaults', {}],
    ['1 replica, slow scrapes', { replicas: 1, monitoring: { scrapeIntervalMs: 30_000, evaluationIntervalMs: 30_000, retention: '30d' } }],
    ['10 replicas, custom thresholds, no `for`', { replicas: 10, monitoring: { alerts: { abnormalClosesPerSecond: 0.25, forMs: 0 } } }],
  ];
  for (const [name, input] of cases) {
    it(`check config and check rules: ${name}`, () => {
      const { dir, topology } = writeConfig(input);
      const config = promtool(['check', 'config', 'prometheus.yml'], dir);
      assert.equal(config.status, 0, `${config.stdout}${config.stderr}`);
      // Every rule we render is one promtool found (11 since the auth spike).
      assert.match(config.stdout, new RegExp(`SUCCESS: ${alertRules(topology).length} rules found`));
      assert.equal(alertRules(topology).length, 11);
      const rules = promtool(['check', 'rules', 'rules.yml'], dir);
      assert.equal(rules.status, 0, `${rules.stdout}${rules.stderr}`);
    });
  }

  it('and refuses a broken rule (so the check can fail)', () => {
    const { dir } = writeConfig({});
    writeFileSync(
      join(dir, 'rules.yml'),
      stringify({ groups: [{ name: 'x', rules: [{ alert: 'Broken', expr: 'sum(rate(ws_connections_closed_total[5m]) >' }] }] }),
    );
    const r = promtool(['check', 'config', 'prometheus.yml'], dir);
    assert.notEqual(r.status, 0);
    assert.match(`${r.stdout}${r.stderr}`, /parse error/);
  });
});

describe('the alert rules fire on the failures they describe (promtool test rules)', () => {
  it('replica down, 1006 closes rising, oversize messages, handshake rejections; not on a trickle', () => {
    const { dir, topology } = writeConfig({ monitoring: { alerts: { forMs: 60_000 } } });
    // The annotations as Prometheus should expand them for these labels and value.
    const expected = (alertname: string, labels: Record<string, string>, value = '') => {
      const rule = alertRules(topology).find((r) => r.alert === alertname)!;
      const expand = (t: string) =>
        t.replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, l) => labels[l]).replace(/\{\{ \$value( \| humanize)? \}\}/g, value);
      return {
        exp_labels: { ...rule.labels, ...labels },
        exp_annotations: { summary: expand(rule.annotations.summary), description: expand(rule.annotations.description) },
      };
    };
    // One sample a minute; counters given as start+increase-per-minute.
    const tests = {
      rule_files: ['rules.yml'],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            { series: 'up{job="ws-server",instance="ws-server-1:8080",replica="ws-server-1"}', values: '1 1 0 0 0 0 0 0 0 0 0' },
            { series: 'up{job="ws-server",instance="ws-server-0:8080",replica="ws-server-0"}', values: '1x10' },
            // 600 per minute = 10/s, above the default 1/s.
            { series: 'ws_connections_closed_total{code="1006",replica="ws-server-0"}', values: '0+600x10' },
            // 30 per minute = 0.5/s of 1000: not an alert.
            { series: 'ws_connections_closed_total{code="1000",replica="ws-server-0"}', values: '0+30x10' },
            { series: 'ws_oversize_messages_total{replica="ws-server-2"}', values: '0+60x10' },
            { series: 'ws_handshake_rejections_total{reason="capacity",replica="ws-server-0"}', values: '0+1200x10' },
            { series: 'ws_handshake_rejections_total{reason="origin",replica="ws-server-0"}', values: '0+6x10' },
            // ws-server-1 loses the broker; ws-server-2 has none (never an alert); ws-server-0 lags.
            { series: 'ws_broker_enabled{replica="ws-server-1"}', values: '1x10' },
            { series: 'ws_broker_connected{replica="ws-server-1"}', values: '1 1 0 0 0 0 0 0 0 0 0' },
            { series: 'ws_broker_enabled{replica="ws-server-2"}', values: '0x10' },
            { series: 'ws_broker_connected{replica="ws-server-2"}', values: '0x10' },
            { series: 'ws_broker_consumer_lag{replica="ws-server-0"}', values: '0 0 5000 5000 5000 5000 5000 5000 5000 5000 5000' },
            { series: 'ws_broker_consumer_lag{replica="ws-server-1"}', values: '10x10' },
            // Forged tokens at 10/s; a few expired ones (0.1/s) are normal churn.
            { series: 'ws_auth_failures_total{reason="signature",replica="ws-server-0"}', values: '0+600x10' },
            { series: 'ws_auth_failures_total{reason="expired",replica="ws-server-1"}', values: '0+6x10' },
          ],
          alert_rule_test: [
            { eval_time: '1m', alertname: 'WsReplicaDown', exp_alerts: [] },
            {
              eval_time: '5m',
              alertname: 'WsReplicaDown',
              exp_alerts: [expected('WsReplicaDown', { job: 'ws-server', instance: 'ws-server-1:8080', replica: 'ws-server-1' })],
            },
            { eval_time: '8m', alertname: 'WsAbnormalClosesRising', exp_alerts: [expected('WsAbnormalClosesRising', {}, '10')] },
            { eval_time: '8m', alertname: 'WsOversizeMessages', exp_alerts: [expected('WsOversizeMessages', {}, '1')] },
            {
              eval_time: '8m',
              alertname: 'WsHandshakeRejectionSpike',
              exp_alerts: [expected('WsHandshakeRejectionSpike', { reason: 'capacity' }, '20')],
            },
            { eval_time: '8m', alertname: 'WsSlowConsumers', exp_alerts: [] },
            { eval_time: '1m', alertname: 'WsAuthFailureSpike', exp_alerts: [] },
            {
              eval_time: '8m',
              alertname: 'WsAuthFailureSpike',
              exp_alerts: [expected('WsAuthFailureSpike', { reason: 'signature' }, '10')],
            },
            { eval_time: '1m', alertname: 'WsBrokerDown', exp_alerts: [] },
            { eval_time: '5m', alertname: 'WsBrokerDown', exp_alerts: [expected('WsBrokerDown', { replica: 'ws-server-1' })] },
            {
              eval_time: '5m',
              alertname: 'WsBrokerConsumerLag',
              exp_alerts: [expected('WsBrokerConsumerLag', { replica: 'ws-server-0' }, '5000')],
            },
          ],
        },
      ],
    };
    writeFileSync(join(dir, 'rules.test.yml'), stringify(tests));
    const r = promtool(['test', 'rules', 'rules.test.yml'], dir);
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  });
});
