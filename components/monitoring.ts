import type { Topology } from '../app/src/topology';
import { GRAFANA_PATHS, grafanaPathOf, renderGrafanaFiles } from '../monitoring/grafana-provisioning';
import { nginxExporterArgs, prometheusArgs, renderPrometheusFiles } from '../monitoring/prometheus';
import type { PrometheusRenderOptions } from '../monitoring/prometheus-config';
import type { ComponentSpec } from './spec';

export interface PrometheusLaunch {
  /** Where prometheus.yml and the rules are. */
  readonly configDir: string;
  /** Its time-series store. */
  readonly dataDir: string;
  /**
   * The only address it listens on.
   * @default every address
   */
  readonly address?: string;
  readonly port: number;
  /** What it scrapes, as this target reaches it. */
  readonly targets: PrometheusRenderOptions;
}

/** Prometheus with the topology's scrape config and alert rules, ready once /-/ready answers. */
export function prometheusSpec(topology: Topology, o: PrometheusLaunch): ComponentSpec {
  const files = renderPrometheusFiles(topology, o.targets);
  return {
    argv: [
      'prometheus',
      ...prometheusArgs({
        configDir: o.configDir,
        dataDir: o.dataDir,
        retention: topology.monitoring.retention,
        listen: `${o.address ?? ''}:${o.port}`,
      }),
    ],
    imageEntrypoint: true,
    files: Object.entries(files).map(([name, content]) => ({ path: `${o.configDir}/${name}`, content })),
    ports: { http: o.port },
    health: { url: `http://127.0.0.1:${o.port}/-/ready`, probe: 'wget', startPeriodMs: 5_000, retries: 5 },
  };
}

export interface NginxExporterLaunch {
  /** Where nginx's plain-HTTP port answers stub_status (`host:port`). */
  readonly proxy: string;
  /** `host:port` or `:port`. */
  readonly listen: string;
  /**
   * The exporter's program: Debian names it prometheus-nginx-exporter.
   * @default nginx-prometheus-exporter (the upstream name, the image's entrypoint)
   */
  readonly program?: string;
}

/** The standard nginx exporter, reading stub_status. */
export function nginxExporterSpec(o: NginxExporterLaunch): ComponentSpec {
  return {
    argv: [o.program ?? 'nginx-prometheus-exporter', ...nginxExporterArgs({ proxy: o.proxy, listen: o.listen })],
    imageEntrypoint: true,
  };
}

/** The port Grafana's image listens on (its default; nothing here changes it). */
export const GRAFANA_PORT = 3000;

/** Grafana with its provisioned data source and dashboard, read-only for anonymous viewers. */
export function grafanaSpec(topology: Topology, o: { readonly prometheusUrl: string }): ComponentSpec {
  const files = renderGrafanaFiles({ prometheusUrl: o.prometheusUrl, scrapeIntervalMs: topology.monitoring.scrapeIntervalMs });
  return {
    argv: ['grafana'],
    imageEntrypoint: true,
    env: {
      // Read-only viewing without a login; the admin account (admin/admin, changed at first
      // login) can still sign in.
      GF_AUTH_ANONYMOUS_ENABLED: 'true',
      GF_AUTH_ANONYMOUS_ORG_ROLE: 'Viewer',
      GF_ANALYTICS_REPORTING_ENABLED: 'false',
      GF_ANALYTICS_CHECK_FOR_UPDATES: 'false',
      GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH: `${GRAFANA_PATHS.dashboards}/ws-notifications.json`,
    },
    files: Object.entries(files).map(([name, content]) => ({ path: grafanaPathOf(name), content })),
    ports: { http: GRAFANA_PORT },
    health: { url: `http://127.0.0.1:${GRAFANA_PORT}/api/health`, probe: 'wget', startPeriodMs: 10_000, retries: 10 },
  };
}
