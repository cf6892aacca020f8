import { stringify } from 'yaml';
import type { Topology } from '../app/src/topology';
import { prometheusDuration } from '../app/src/shared/duration';
import { VRRP_METRICS_PATH } from '../nginx/render';

/** Job names: the dashboard and the rules select on them. */
export const SCRAPE_JOBS = {
  servers: 'ws-server',
  nginx: 'nginx',
  loadClient: 'load-client',
  prometheus: 'prometheus',
  /** The HA pair's proxies: which one holds the virtual address (ws_proxy_vrrp_master). */
  vrrp: 'nginx-vrrp',
} as const;

/** The rules file, beside the config (a relative path is relative to the config file). */
export const RULES_FILE = 'rules.yml';

/** Where the scrape targets are, as Prometheus reaches them (container names, or loopback ports locally). */
export interface PrometheusRenderOptions {
  /** One `host:port` per replica, in replica order; each replica's /metrics. */
  readonly servers: readonly { readonly replica: string; readonly target: string }[];
  /** The nginx exporter (it reads stub_status). */
  readonly nginxExporter: string;
  /** The load client's /metrics; it is down whenever no load runs. */
  readonly loadClient: string;
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
  if (options.servers.length === 0) throw new Error('renderPrometheusConfig: at least one server target is required');
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
        static_configs: options.servers.map((s) => ({ targets: [s.target], labels: { replica: s.replica } })),
      },
      { job_name: SCRAPE_JOBS.nginx, static_configs: [{ targets: [options.nginxExporter] }] },
      { job_name: SCRAPE_JOBS.loadClient, static_configs: [{ targets: [options.loadClient] }] },
      { job_name: SCRAPE_JOBS.prometheus, static_configs: [{ targets: [options.self] }] },
      ...(options.haProxies?.length
        ? [{ job_name: SCRAPE_JOBS.vrrp, metrics_path: VRRP_METRICS_PATH, honor_labels: true, static_configs: options.haProxies.map((p) => ({ targets: [p.target], labels: { proxy: p.proxy } })) }]
        : []),
    ],
  };
  return `# Rendered by ws-notifications from the topology (${options.servers.length} replica(s)); do not edit by hand.\n${stringify(config)}`;
}
