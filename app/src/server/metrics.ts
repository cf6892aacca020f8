import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { CloseCode, ERROR_CODES, SUBSCRIPTION_LIMIT_CODES } from '../shared/protocol';
import { GRANT_ACTIONS } from '../topology/auth';
import { AUTH_FAILURE_REASONS } from './auth/verifier';
import { REJECT_REASONS } from './handshake';

/**
 * Close codes exported from the start at zero: normal, going away (drain), abnormal (no close
 * frame: proxy timeout or dropped TCP), invalid payload, policy (slow consumer), too big,
 * internal error. A series that exists before its first event lets rate() and alerts see that
 * first event; other codes appear when they happen.
 */
const TRACKED_CLOSE_CODES = [
  CloseCode.normal,
  CloseCode.goingAway,
  CloseCode.abnormal,
  CloseCode.invalidPayload,
  CloseCode.policyViolation,
  CloseCode.messageTooBig,
  CloseCode.internalError,
] as const;

/**
 * The server's Prometheus metrics. Names follow Prometheus conventions: a `ws_` prefix, base
 * units (seconds, bytes), `_total` counters, histograms for latencies and sizes, and no
 * per-connection labels (cardinality stays bounded whatever the connection count).
 */
export function createMetrics(replica: string) {
  /** Read at collection time; the server points it at its own state. */
  const sources = {
    shedCounts: () => ({ retired: 0, retiredWorkers: 0 }),
    /** Undefined without a broker. */
    broker: (): { connected: boolean; lag: number; recentBytes: number } | undefined => undefined,
  };
  const registry = new Registry();
  registry.setDefaultLabels({ replica });
  collectDefaultMetrics({ register: registry });
  const r = [registry];

  const metrics = {
    registry,
    sources,
    connectionsActive: new Gauge({ name: 'ws_connections_active', help: 'Open WebSocket connections.', registers: r }),
    connectionsOpened: new Counter({ name: 'ws_connections_opened_total', help: 'WebSocket connections accepted.', registers: r }),
    connectionsClosed: new Counter({
      name: 'ws_connections_closed_total',
      help: 'WebSocket connections closed, by close code.',
      labelNames: ['code'] as const,
      registers: r,
    }),
    handshakeRejections: new Counter({
      name: 'ws_handshake_rejections_total',
      help: 'Upgrade requests refused, by reason.',
      labelNames: ['reason'] as const,
      registers: r,
    }),
    messagesReceived: new Counter({
      name: 'ws_messages_received_total',
      help: 'Messages received, by type.',
      labelNames: ['type'] as const,
      registers: r,
    }),
    messagesSent: new Counter({
      name: 'ws_messages_sent_total',
      help: 'Messages sent, by type.',
      labelNames: ['type'] as const,
      registers: r,
    }),
    bytesReceived: new Counter({ name: 'ws_received_bytes_total', help: 'Message payload bytes received.', registers: r }),
    bytesSent: new Counter({ name: 'ws_sent_bytes_total', help: 'Message payload bytes sent.', registers: r }),
    messageSize: new Histogram({
      name: 'ws_message_size_bytes',
      help: 'Size of message payloads, by direction.',
      labelNames: ['direction'] as const,
      buckets: [64, 256, 1024, 4096, 16384, 65536, 262144, 1048576],
      registers: r,
    }),
    heartbeatRtt: new Histogram({
      name: 'ws_heartbeat_rtt_seconds',
      help: 'Time from a ping to its pong.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: r,
    }),
    heartbeatTimeouts: new Counter({
      name: 'ws_heartbeat_timeouts_total',
      help: 'Peers terminated for not answering pings within the pong timeout.',
      registers: r,
    }),
    writeTimeouts: new Counter({
      name: 'ws_write_timeouts_total',
      help: 'Peers terminated because a send made no progress within the write timeout.',
      registers: r,
    }),
    inflateReleases: new Counter({
      name: 'ws_inflate_releases_total',
      help: "Idle connections' inflate streams released (server.inflateIdleMs).",
      registers: r,
    }),
    oversizeMessages: new Counter({
      name: 'ws_oversize_messages_total',
      help: 'Messages above the size limit (closed with 1009; suspected DoS).',
      registers: r,
    }),
    invalidUtf8: new Counter({ name: 'ws_invalid_utf8_total', help: 'Text messages with invalid UTF-8 (closed with 1007).', registers: r }),
    malformedMessages: new Counter({
      name: 'ws_malformed_messages_total',
      help: 'Messages that were not valid protocol messages (answered with an error).',
      labelNames: ['code'] as const,
      registers: r,
    }),
    slowConsumerCloses: new Counter({
      name: 'ws_slow_consumer_closes_total',
      help: 'Connections closed because their unsent data passed the send buffer limit.',
      registers: r,
    }),
    subscriptions: new Gauge({ name: 'ws_topic_subscriptions', help: 'Topic subscriptions held by open connections.', registers: r }),
    subscriptionRejections: new Counter({
      name: 'ws_subscription_rejections_total',
      help: 'Subscribe requests refused at a limit, by code.',
      labelNames: ['limit'] as const,
      registers: r,
    }),
    proxyRetiredConnections: new Gauge({
      name: 'ws_proxy_retired_connections',
      help: 'Open connections carried by nginx workers a reload retired, waiting for their 1001.',
      registers: r,
      collect() {
        this.set(sources.shedCounts().retired);
      },
    }),
    proxyRetiredWorkers: new Gauge({
      name: 'ws_proxy_retired_workers',
      help: 'Retired (shutting-down) nginx workers still holding connections to this replica.',
      registers: r,
      collect() {
        this.set(sources.shedCounts().retiredWorkers);
      },
    }),
    shedCloses: new Counter({
      name: 'ws_shed_closes_total',
      help: 'Connections closed with 1001 outside a drain, by reason (reload: a retired nginx worker; rebalance).',
      labelNames: ['reason'] as const,
      registers: r,
    }),
    notificationsDelivered: new Counter({
      name: 'ws_notifications_delivered_total',
      help: 'Notifications delivered to subscribers.',
      registers: r,
    }),
    brokerEnabled: new Gauge({
      name: 'ws_broker_enabled',
      help: '1 when this replica delivers through a broker.',
      registers: r,
      collect() {
        this.set(sources.broker() ? 1 : 0);
      },
    }),
    brokerConnected: new Gauge({
      name: 'ws_broker_connected',
      help: '1 while the broker connection is up and the broker answers its health check (0 without a broker, or while it stalls).',
      registers: r,
      collect() {
        this.set(sources.broker()?.connected ? 1 : 0);
      },
    }),
    brokerConsumerLag: new Gauge({
      name: 'ws_broker_consumer_lag',
      help: "Publications stored in the broker that this replica has not delivered yet (its consumer's lag).",
      registers: r,
      collect() {
        this.set(sources.broker()?.lag ?? 0);
      },
    }),
    brokerSkipped: new Counter({
      name: 'ws_broker_skipped_total',
      help:
        'Stored notifications this replica could not deliver or replay and skipped, by reason: undecodable (not JSON, or ' +
        'nested too deep), invalid (not a notification), undeliverable (failed to send).',
      labelNames: ['reason'] as const,
      registers: r,
    }),
    brokerRecentBytes: new Gauge({
      name: 'ws_broker_recent_bytes',
      help: 'Bytes of recent deliveries this replica holds to answer recoveries from memory (at most broker.recentBytes).',
      registers: r,
      collect() {
        this.set(sources.broker()?.recentBytes ?? 0);
      },
    }),
    recoveries: new Counter({
      name: 'ws_recoveries_total',
      help: 'Subscriptions with a position (subscribe since), by result: recovered, or unrecoverable (history too short, epoch changed, broker unavailable).',
      labelNames: ['result'] as const,
      registers: r,
    }),
    recoveryRetries: new Counter({
      name: 'ws_recovery_retries_total',
      help: 'Times a recovery asked the broker again because it did not answer (a leader election, a reconnect, a stall).',
      registers: r,
    }),
    recoveryReplayed: new Counter({
      name: 'ws_recovery_replayed_total',
      help: 'Notifications replayed from the broker to recovering subscribers.',
      registers: r,
    }),
    brokerPublishSeconds: new Histogram({
      name: 'ws_broker_publish_seconds',
      help: "Time from a publication to the broker's acknowledgement (stored).",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: r,
    }),
    authFailures: new Counter({
      name: 'ws_auth_failures_total',
      help: 'Tokens refused (connect or refresh) and connections closed for auth, by reason.',
      labelNames: ['reason'] as const,
      registers: r,
    }),
    authDenials: new Counter({
      name: 'ws_auth_denials_total',
      help: 'Subscribes and publishes refused for want of a grant, by action.',
      labelNames: ['action'] as const,
      registers: r,
    }),
    authRevocations: new Counter({ name: 'ws_auth_revocations_total', help: 'Revocations applied (by subject or token).', registers: r }),
    authRefreshes: new Counter({ name: 'ws_auth_refreshes_total', help: 'Tokens refreshed in-band.', registers: r }),
    jwksFetches: new Counter({
      name: 'ws_auth_jwks_fetches_total',
      help: "Fetches of the OpenID provider's key set, by result.",
      labelNames: ['result'] as const,
      registers: r,
    }),
    ready: new Gauge({ name: 'ws_ready', help: '1 while accepting connections, 0 while draining.', registers: r }),
  };
  for (const code of TRACKED_CLOSE_CODES) metrics.connectionsClosed.inc({ code: String(code) }, 0);
  for (const reason of REJECT_REASONS) metrics.handshakeRejections.inc({ reason }, 0);
  for (const code of ERROR_CODES) metrics.malformedMessages.inc({ code }, 0);
  for (const limit of SUBSCRIPTION_LIMIT_CODES) metrics.subscriptionRejections.inc({ limit }, 0);
  for (const reason of ['reload', 'rebalance']) metrics.shedCloses.inc({ reason }, 0);
  for (const result of ['recovered', 'unrecoverable']) metrics.recoveries.inc({ result }, 0);
  for (const reason of ['undecodable', 'invalid', 'undeliverable']) metrics.brokerSkipped.inc({ reason }, 0);
  for (const reason of AUTH_FAILURE_REASONS) metrics.authFailures.inc({ reason }, 0);
  for (const action of GRANT_ACTIONS) metrics.authDenials.inc({ action }, 0);
  for (const result of ['ok', 'failed']) metrics.jwksFetches.inc({ result }, 0);
  return metrics;
}

export type ServerMetrics = ReturnType<typeof createMetrics>;
