import { stringify } from 'yaml';
import { SERVER_NAME, type Topology } from '../app/src/topology';
import { prometheusDuration } from '../app/src/shared/duration';
import { VRRP_METRICS_PATH } from '../nginx/render';

/** Job names: the dashboard and the rules select on them. */
export const SCRAPE_JOBS = {
  servers: SERVER_NAME,
  nginx: 'nginx',
  loadClient: 'load-client',
  prometheus: 'prometheus',
  /** The HA pair's proxies: which one holds the virtual address (ws_proxy_vrrp_master). */
  vrrp: 'nginx-vrrp',
} as const;

/** The rules file, beside the config (a relative path is relative to the config file). */
export const RULES_FILE = 'rules.yml';

/** A swarm service's tasks, found by DNS (`tasks.<service>`, re-resolved as tasks come and go), each on `port`. */
export interface DnsTargets {
  readonly dns: string;
  readonly port: number;
}

/** Where the scrape targets are, as Prometheus reaches them (container names, loopback ports locally, or swarm tasks). */
export interface PrometheusRenderOptions {
  /** One `host:port` per replica, in replica order, or the servers' tasks; each replica's /metrics. */
  readonly servers: readonly { readonly replica: string; readonly target: string }[] | DnsTargets;
  /** The nginx exporter (it reads stub_status), where there is one. */
  readonly nginxExporter?: string;
  /** The load client's /metrics; it is down whenever no load runs. */
  readonly loadClient: string | DnsTargets;
  /** Prometheus itself. */
  readonly self: string;
  /** With the HA pair: each proxy's status port, serving its VRRP state metric. */
  readonly haProxies?: readonly { readonly proxy: string; readonly target: string }[];
}

/**
 * Renders prometheus.yml from the topology: the replica count decides the server targets, so
 * scaling in code changes what is scraped. Static targets (not Docker discovery) keep the same
 * config valid for containers and for the local processes. Pure: same input, same text.
 */
export function renderPrometheusConfig(topology: Topology, options: PrometheusRenderOptions): string {
  const { monitoring } = topology;
  const { servers } = options;
  if ('length' in servers && servers.length === 0) throw new Error('renderPrometheusConfig: at least one server target is required');
  const dns = (d: DnsTargets) => ({
    dns_sd_configs: [{ names: [d.dns], type: 'A', port: d.port, refresh_interval: prometheusDuration(monitoring.scrapeIntervalMs) }],
  });
  // A scrape may not outlast its interval; 10 s (Prometheus's default) bounds a slow target.
  const scrapeTimeoutMs = Math.min(10_000, monitoring.scrapeIntervalMs);
  const config = {
    global: {
      scrape_interval: prometheusDuration(monitoring.scrapeIntervalMs),
      scrape_timeout: prometheusDuration(scrapeTimeoutMs),
      evaluation_interval: prometheusDuration(monitoring.evaluationIntervalMs),
      external_labels: { stack: topology.name },
    },
    rule_files: [RULES_FILE],
    scrape_configs: [
      {
        job_name: SCRAPE_JOBS.servers,
        // Each replica labels its own series `replica`; the target label names it on `up` too.
        honor_labels: true,
        ...('length' in servers
          ? { static_configs: servers.map((s) => ({ targets: [s.target], labels: { replica: s.replica } })) }
          : dns(servers)),
      },
      ...(options.nginxExporter ? [{ job_name: SCRAPE_JOBS.nginx, static_configs: [{ targets: [options.nginxExporter] }] }] : []),
      {
        job_name: SCRAPE_JOBS.loadClient,
        ...(typeof options.loadClient === 'string' ? { static_configs: [{ targets: [options.loadClient] }] } : dns(options.loadClient)),
      },
      { job_name: SCRAPE_JOBS.prometheus, static_configs: [{ targets: [options.self] }] },
      ...(options.haProxies?.length
        ? [
            {
              job_name: SCRAPE_JOBS.vrrp,
              metrics_path: VRRP_METRICS_PATH,
              honor_labels: true,
              static_configs: options.haProxies.map((p) => ({ targets: [p.target], labels: { proxy: p.proxy } })),
            },
          ]
        : []),
    ],
  };
  const what = 'length' in servers ? `${servers.length} replica(s)` : `the tasks of ${servers.dns}`;
  return `# Rendered by ws-notifications from the topology (${what}); do not edit by hand.\n${stringify(config)}`;
}
