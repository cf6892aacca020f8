import type { Dashboard, DataSourceRef, Panel, RowPanel } from '@grafana/schema';
import { DATASOURCE_UID } from '../grafana-provisioning';
import { SCRAPE_JOBS } from '../prometheus-config';

/**
 * The Grafana dashboard, typed with Grafana's own schema types (@grafana/schema, the version of
 * the deployed Grafana). `npm run dashboard` writes it to dashboards/ws-notifications.json, the
 * file Grafana provisions; a unit test fails when the two differ.
 */
export const DASHBOARD_UID = 'ws-notifications';
/** Where Grafana serves the dashboard (the deploy prints it, the stack outputs it). */
export const dashboardUrl = (grafanaPort: number) => `http://127.0.0.1:${grafanaPort}/d/${DASHBOARD_UID}`;
const DATASOURCE: DataSourceRef = { type: 'prometheus', uid: DATASOURCE_UID };
const RATE = '$__rate_interval';
/** Per-replica panels follow the dashboard's `replica` variable. */
const SEL = '{replica=~"$replica"}';
const SERVER_SEL = `{job="${SCRAPE_JOBS.servers}",replica=~"$replica"}`;

type Query = [expr: string, legend: string];
interface PanelSpec {
  title: string;
  description: string;
  queries: Query[];
  unit?: string;
  kind?: 'timeseries' | 'stat';
  width?: number;
  height?: number;
  stacked?: boolean;
}

/** Lays panels out left to right in rows of 24 columns, a collapsed=false row header per section. */
class Layout {
  readonly panels: (Panel | RowPanel)[] = [];
  private id = 0;
  private y = 0;
  private x = 0;
  private rowHeight = 0;

  section(title: string, specs: PanelSpec[]): void {
    this.newLine();
    this.panels.push({ type: 'row', id: ++this.id, title, collapsed: false, panels: [], gridPos: { h: 1, w: 24, x: 0, y: this.y } });
    this.y += 1;
    for (const spec of specs) this.panel(spec);
  }

  private newLine(): void {
    this.y += this.rowHeight;
    this.x = 0;
    this.rowHeight = 0;
  }

  private panel(spec: PanelSpec): void {
    const w = spec.width ?? 8;
    const h = spec.height ?? 8;
    if (this.x + w > 24) this.newLine();
    const kind = spec.kind ?? 'timeseries';
    this.panels.push({
      type: kind,
      id: ++this.id,
      title: spec.title,
      description: spec.description,
      datasource: DATASOURCE,
      gridPos: { h, w, x: this.x, y: this.y },
      fieldConfig: {
        defaults: {
          unit: spec.unit ?? 'short',
          ...(kind === 'timeseries'
            ? {
                custom: {
                  lineWidth: 1,
                  fillOpacity: 10,
                  showPoints: 'never',
                  stacking: { mode: spec.stacked ? 'normal' : 'none', group: 'A' },
                },
              }
            : {}),
        },
        overrides: [],
      },
      options:
        kind === 'timeseries'
          ? {
              legend: { displayMode: 'table', placement: 'bottom', calcs: ['lastNotNull', 'max'], showLegend: true },
              tooltip: { mode: 'multi', sort: 'desc' },
            }
          : {
              reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
              colorMode: 'value',
              graphMode: 'area',
              textMode: 'auto',
              justifyMode: 'auto',
              orientation: 'auto',
            },
      targets: spec.queries.map(([expr, legendFormat], i) => ({
        refId: String.fromCharCode(65 + i),
        datasource: DATASOURCE,
        expr,
        legendFormat,
      })),
    });
    this.x += w;
    this.rowHeight = Math.max(this.rowHeight, h);
  }
}

const rate = (metric: string, sel = SEL) => `rate(${metric}${sel}[${RATE}])`;

export function buildDashboard(): Dashboard {
  const l = new Layout();
  const stat = (title: string, description: string, expr: string): PanelSpec => ({
    title,
    description,
    queries: [[expr, title]],
    kind: 'stat',
    width: 6,
    height: 4,
  });

  l.section('Overview', [
    stat('Open WebSockets (servers)', 'Connections the replicas hold now.', `sum(ws_connections_active${SEL})`),
    stat(
      'Open connections (Nginx)',
      'Client connections Nginx holds (stub_status via the exporter): WebSockets plus HTTP.',
      'sum(nginx_connections_active)',
    ),
    stat('Replicas up', 'Replicas Prometheus can scrape.', `sum(up{job="${SCRAPE_JOBS.servers}"})`),
    stat('Load client open', 'Connections the load client holds while a run is on.', 'sum(load_connections_open)'),
  ]);
  l.section('Connections', [
    {
      title: 'Active connections per replica',
      description: 'ws_connections_active by replica: with least_conn the lines should sit together.',
      queries: [[`sum by (replica) (ws_connections_active${SEL})`, '{{replica}}']],
      stacked: true,
    },
    {
      title: 'Nginx connections',
      description: 'stub_status: active, and what the active ones are doing (an open WebSocket counts as writing).',
      queries: [
        ['sum(nginx_connections_active)', 'active'],
        ['sum(nginx_connections_reading)', 'reading'],
        ['sum(nginx_connections_writing)', 'writing'],
        ['sum(nginx_connections_waiting)', 'waiting (keep-alive)'],
      ],
    },
    {
      title: 'Connection opens and closes by code',
      description:
        'Opens per second, and closes per second by close code: 1000 normal, 1001 drain, 1006 no close frame (proxy timeout, dropped TCP), 1008 slow consumer, 1009 too big.',
      queries: [
        [`sum(${rate('ws_connections_opened_total')})`, 'opened'],
        [`sum by (code) (${rate('ws_connections_closed_total')}) > 0`, 'closed {{code}}'],
      ],
      unit: 'ops',
    },
    {
      title: 'Reloads and rebalancing',
      description:
        'After an nginx reload the retired workers keep their WebSockets until the replicas close them with 1001 (before ' +
        'worker_shutdown_timeout); a rebalance closes some with 1001 too. Retired workers should drop to 0 within the shutdown timeout of the last reload.',
      queries: [
        [`max(ws_proxy_retired_workers${SEL})`, 'retired nginx workers (max over replicas)'],
        [`sum(ws_proxy_retired_connections${SEL})`, 'connections awaiting their 1001'],
        [`sum by (reason) (${rate('ws_shed_closes_total')}) > 0`, '1001/s {{reason}}'],
      ],
    },
  ]);
  l.section('Handshakes and protection', [
    {
      title: 'Handshake rejections by reason',
      description: 'Upgrade requests the servers refused: capacity/draining (503), origin (403), compression (400).',
      queries: [[`sum by (reason) (${rate('ws_handshake_rejections_total')}) > 0`, '{{reason}}']],
      unit: 'reqps',
    },
    {
      title: 'Nginx accepted connections and requests',
      description: 'New client connections and HTTP requests per second at the proxy (every handshake is a request).',
      queries: [
        [`sum(${rate('nginx_connections_accepted', '')})`, 'accepted'],
        [`sum(${rate('nginx_connections_handled', '')})`, 'handled'],
        [`sum(${rate('nginx_http_requests_total', '')})`, 'requests'],
      ],
      unit: 'ops',
    },
    {
      title: 'Protection events',
      description:
        'Oversize messages (1009, DoS probing), slow consumers (1008), heartbeat and write timeouts, invalid UTF-8, malformed messages, subscribes refused at a limit.',
      queries: [
        [`sum(${rate('ws_oversize_messages_total')})`, 'oversize'],
        [`sum(${rate('ws_slow_consumer_closes_total')})`, 'slow consumer'],
        [`sum(${rate('ws_heartbeat_timeouts_total')})`, 'heartbeat timeout'],
        [`sum(${rate('ws_write_timeouts_total')})`, 'write timeout'],
        [`sum(${rate('ws_invalid_utf8_total')})`, 'invalid UTF-8'],
        [`sum(${rate('ws_malformed_messages_total')})`, 'malformed'],
        [`sum by (limit) (${rate('ws_subscription_rejections_total')}) > 0`, 'subscribe refused: {{limit}}'],
      ],
      unit: 'ops',
    },
  ]);
  l.section('Auth', [
    {
      title: 'Auth failures by reason',
      description:
        'Tokens refused at connect or refresh and connections closed for auth (4500 invalid, 4001 no connect in time, 4005 not refreshed, 4501 revoked, 1013 keys unreachable).',
      queries: [[`sum by (reason) (${rate('ws_auth_failures_total')}) > 0`, '{{reason}}']],
      unit: 'ops',
    },
    {
      title: 'Refreshes, revocations, denials, key fetches',
      description:
        'Tokens refreshed in-band, revocations applied, subscribes and publishes no grant allowed, fetches of the provider key set.',
      queries: [
        [`sum(${rate('ws_auth_refreshes_total')})`, 'refreshed'],
        [`sum(${rate('ws_auth_revocations_total')})`, 'revocations'],
        [`sum by (action) (${rate('ws_auth_denials_total')})`, 'denied: {{action}}'],
        [`sum by (result) (${rate('ws_auth_jwks_fetches_total')})`, 'JWKS fetch: {{result}}'],
      ],
      unit: 'ops',
    },
  ]);
  l.section('Traffic', [
    {
      title: 'Messages per second',
      description: 'Messages received and sent by the replicas, by type.',
      queries: [
        [`sum by (type) (${rate('ws_messages_received_total')})`, 'in {{type}}'],
        [`sum by (type) (${rate('ws_messages_sent_total')})`, 'out {{type}}'],
      ],
      unit: 'ops',
    },
    {
      title: 'Bytes per second',
      description: 'Message payload bytes (after decompression).',
      queries: [
        [`sum(${rate('ws_received_bytes_total')})`, 'received'],
        [`sum(${rate('ws_sent_bytes_total')})`, 'sent'],
      ],
      unit: 'Bps',
    },
    {
      title: 'Notifications delivered',
      description: 'Fan-out deliveries per second and topic subscriptions held.',
      queries: [
        [`sum(${rate('ws_notifications_delivered_total')})`, 'delivered/s'],
        [`sum(ws_topic_subscriptions${SEL})`, 'subscriptions'],
      ],
    },
  ]);
  l.section('Broker', [
    {
      title: 'Broker connection and lag',
      description:
        'Replicas delivering through the broker, those connected to it, and how many stored publications each has not delivered yet (its consumer lag).',
      queries: [
        [`sum(ws_broker_enabled${SEL})`, 'with a broker'],
        [`sum(ws_broker_connected${SEL})`, 'connected'],
        [`max(ws_broker_consumer_lag${SEL})`, 'lag (max over replicas)'],
      ],
    },
    {
      title: 'Broker publish latency',
      description: "From a publication to the broker's acknowledgement (stored).",
      queries: [
        [`histogram_quantile(0.5, sum by (le) (${rate('ws_broker_publish_seconds_bucket')}))`, 'p50'],
        [`histogram_quantile(0.99, sum by (le) (${rate('ws_broker_publish_seconds_bucket')}))`, 'p99'],
      ],
      unit: 's',
    },
    {
      title: 'Recoveries',
      description:
        'Subscriptions after a reconnect (subscribe since): recovered, or unrecoverable (the application reloads); notifications replayed per second.',
      queries: [
        [`sum by (result) (${rate('ws_recoveries_total')})`, '{{result}}/s'],
        [`sum(${rate('ws_recovery_replayed_total')})`, 'replayed/s'],
      ],
      unit: 'ops',
    },
  ]);
  const quantiles = (metric: string, by: string, legend: string): Query[] =>
    ['0.5', '0.99'].map((q) => [`histogram_quantile(${q}, sum by (${by}) (${rate(metric)}))`, `p${Number(q) * 100} ${legend}`.trim()]);
  l.section('Latency and sizes', [
    {
      title: 'Message size percentiles',
      description: 'From the ws_message_size_bytes histogram (bucket bounds limit the precision).',
      queries: quantiles('ws_message_size_bytes_bucket', 'le, direction', '{{direction}}'),
      unit: 'bytes',
    },
    {
      title: 'Heartbeat RTT percentiles',
      description: "Ping to pong, measured by the servers: the network and proxy path plus the client's event loop.",
      queries: quantiles('ws_heartbeat_rtt_seconds_bucket', 'le', ''),
      unit: 's',
    },
    {
      title: 'Load client echo RTT',
      description: 'Echo round trip seen by the load client over the last second, corrected for coordinated omission.',
      queries: [
        ['max(load_rtt_seconds{quantile="0.5"})', 'p50'],
        ['max(load_rtt_seconds{quantile="0.99"})', 'p99'],
      ],
      unit: 's',
    },
  ]);
  l.section('Processes', [
    {
      title: 'CPU per replica',
      description: 'Share of one core used by each replica (process_cpu_seconds_total).',
      queries: [[`sum by (replica) (${rate('process_cpu_seconds_total', SERVER_SEL)})`, '{{replica}}']],
      unit: 'percentunit',
    },
    {
      title: 'Memory per replica',
      description: 'Resident memory and V8 heap in use.',
      queries: [
        [`sum by (replica) (process_resident_memory_bytes${SERVER_SEL})`, 'rss {{replica}}'],
        [`sum by (replica) (nodejs_heap_size_used_bytes${SERVER_SEL})`, 'heap {{replica}}'],
      ],
      unit: 'bytes',
    },
    {
      title: 'Event loop lag p99',
      description: 'A replica whose event loop lags delays every socket it holds.',
      queries: [[`max by (replica) (nodejs_eventloop_lag_p99_seconds${SERVER_SEL})`, '{{replica}}']],
      unit: 's',
    },
  ]);
  l.section('Load client', [
    {
      title: 'Load client connections',
      description: 'Open connections against the target number of simulated clients.',
      queries: [
        ['sum(load_connections_open)', 'open'],
        ['sum(load_users)', 'target'],
      ],
    },
    {
      title: 'Load client errors',
      description: 'Handshake and other errors, unexpected closes and reconnects per second.',
      queries: [
        [`sum(${rate('load_errors_total', '')})`, 'errors'],
        [`sum(${rate('load_unexpected_closes_total', '')})`, 'unexpected closes'],
        [`sum(${rate('load_reconnects_total', '')})`, 'reconnects'],
      ],
      unit: 'ops',
    },
    {
      title: 'Load client messages',
      description: 'Messages per second sent and received by the load client.',
      queries: [
        [`sum(${rate('load_messages_sent_total', '')})`, 'sent'],
        [`sum(${rate('load_messages_received_total', '')})`, 'received'],
      ],
      unit: 'ops',
    },
  ]);

  return {
    uid: DASHBOARD_UID,
    title: 'WebSocket notifications',
    description:
      'Nginx, the server replicas and the load client of ws-notifications (provisioned from the repository; edits in the UI are not saved).',
    tags: ['ws-notifications', 'websocket', 'nginx'],
    timezone: 'browser',
    schemaVersion: 39,
    version: 1,
    editable: false,
    graphTooltip: 1,
    refresh: '5s',
    time: { from: 'now-15m', to: 'now' },
    fiscalYearStartMonth: 0,
    liveNow: false,
    annotations: { list: [] },
    links: [],
    templating: {
      list: [
        {
          name: 'replica',
          label: 'Replica',
          type: 'query',
          datasource: DATASOURCE,
          query: { query: 'label_values(ws_connections_active, replica)', refId: 'replica' },
          refresh: 2,
          includeAll: true,
          multi: true,
          allValue: '.*',
          current: { selected: true, text: ['All'], value: ['$__all'] },
          sort: 3,
          hide: 0,
          options: [],
          regex: '',
          skipUrlSync: false,
        },
      ],
    },
    panels: l.panels,
  };
}

/** The file's text: stable key order and a trailing newline, so the diff of a change is the change. */
export function renderDashboard(): string {
  return `${JSON.stringify(buildDashboard(), null, 2)}\n`;
}
