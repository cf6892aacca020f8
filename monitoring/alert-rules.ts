import { stringify } from 'yaml';
import type { Topology } from '../app/src/topology';
import { prometheusDuration } from '../app/src/shared/duration';
import { SCRAPE_JOBS } from './prometheus-config';
import { CloseCode } from '../app/src/shared/protocol';

export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly labels: { severity: 'critical' | 'warning' };
  readonly annotations: { summary: string; description: string };
}

/**
 * The alerting rules, with thresholds from the topology (monitoring.alerts, proxy sizing). They
 * watch what the design worries about: proxy timeouts showing as 1006 closes, a replica or the
 * proxy down, oversize messages (DoS probing), handshake refusals, slow consumers, capacity.
 */
export function alertRules(topology: Topology): AlertRule[] {
  const { alerts } = topology.monitoring;
  const { proxy } = topology;
  const forDuration = prometheusDuration(alerts.forMs);
  const capacity = Math.floor(proxy.targetConnections * alerts.proxyCapacityRatio);
  const rule = (
    alert: string,
    severity: AlertRule['labels']['severity'],
    expr: string,
    summary: string,
    description: string,
  ): AlertRule => ({
    alert,
    expr,
    for: forDuration,
    labels: { severity },
    annotations: { summary, description },
  });
  return [
    rule(
      'WsReplicaDown',
      'critical',
      `up{job="${SCRAPE_JOBS.servers}"} == 0`,
      'Replica {{ $labels.replica }} is down',
      'Prometheus cannot scrape {{ $labels.instance }}. Nginx sends its share elsewhere after max_fails, but the fleet has less capacity.',
    ),
    rule(
      'NginxDown',
      'critical',
      `up{job="${SCRAPE_JOBS.nginx}"} == 0 or nginx_up == 0`,
      'Nginx (or its exporter) is down',
      'The exporter cannot read stub_status, or Prometheus cannot reach the exporter: no client can connect through the proxy.',
    ),
    rule(
      'WsAbnormalClosesRising',
      'warning',
      `sum(rate(ws_connections_closed_total{code="${CloseCode.abnormal}"}[5m])) > ${alerts.abnormalClosesPerSecond}`,
      'Connections are closing with 1006 (no close frame)',
      `{{ $value | humanize }}/s closes without a close frame: Nginx timeouts (proxy_read_timeout ` +
        `${prometheusDuration(proxy.readTimeoutMs)}) cutting idle sockets, or the network dropping them. Check that the ping interval stays below the proxy timeouts.`,
    ),
    rule(
      'WsOversizeMessages',
      'warning',
      `sum(rate(ws_oversize_messages_total[5m])) > ${alerts.oversizeMessagesPerSecond}`,
      'Clients are sending messages above the size limit',
      `{{ $value | humanize }}/s messages above ${topology.server.maxMessageBytes} bytes closed with 1009: a misbehaving client or a DoS attempt.`,
    ),
    rule(
      'WsHandshakeRejectionSpike',
      'warning',
      `sum by (reason) (rate(ws_handshake_rejections_total[5m])) > ${alerts.handshakeRejectionsPerSecond}`,
      'Handshakes refused: {{ $labels.reason }}',
      '{{ $value | humanize }}/s upgrade requests refused for {{ $labels.reason }} (capacity and draining answer 503, origin 403, compression 400).',
    ),
    rule(
      'WsSlowConsumers',
      'warning',
      `sum(rate(ws_slow_consumer_closes_total[5m])) > ${alerts.slowConsumerClosesPerSecond}`,
      'Slow consumers are being disconnected',
      `{{ $value | humanize }}/s connections closed with 1008 because their unsent data passed ${topology.server.sendBufferLimitBytes} bytes.`,
    ),
    rule(
      'WsReplicaStuckDraining',
      'warning',
      'ws_ready == 0',
      'Replica {{ $labels.replica }} is not accepting connections',
      `It has been draining longer than expected (the drain deadline is ${prometheusDuration(topology.server.drainDeadlineMs)}).`,
    ),
    rule(
      'WsBrokerDown',
      'critical',
      'ws_broker_enabled == 1 and ws_broker_connected == 0',
      'Replica {{ $labels.replica }} has lost the broker',
      'Its WebSockets stay open, but publications are refused (broker_unavailable) and nothing is delivered to its subscribers ' +
        'until the broker is back; then it resumes after the last notification it delivered.',
    ),
    rule(
      'WsBrokerConsumerLag',
      'warning',
      `ws_broker_consumer_lag > ${alerts.brokerLagMessages}`,
      'Replica {{ $labels.replica }} is {{ $value }} publications behind the broker',
      'Its subscribers get notifications late: the replica delivers slower than publications arrive (CPU, slow consumers, or too many subscriptions on it).',
    ),
    rule(
      'WsAuthFailureSpike',
      'warning',
      `sum by (reason) (rate(ws_auth_failures_total[5m])) > ${alerts.authFailuresPerSecond}`,
      'Tokens refused: {{ $labels.reason }}',
      '{{ $value | humanize }}/s connections refused or closed for {{ $labels.reason }}: forged or tampered tokens (signature, algorithm), ' +
        "clients not refreshing (not_refreshed), a clock or issuer mismatch (expired, issuer, audience), or the provider's keys unreachable (jwks_unavailable).",
    ),
    rule(
      'NginxNearCapacity',
      'warning',
      `nginx_connections_active > ${capacity}`,
      'Nginx holds {{ $value }} connections',
      `Above ${alerts.proxyCapacityRatio * 100}% of proxy.targetConnections (${proxy.targetConnections}), the number worker_connections was sized for.`,
    ),
  ];
}

export const RULE_GROUP = 'ws-notifications';

/** The rules file Prometheus loads. */
export function renderAlertRules(topology: Topology): string {
  return `# Rendered by ws-notifications from the topology; do not edit by hand.\n${stringify({ groups: [{ name: RULE_GROUP, rules: alertRules(topology) }] })}`;
}
