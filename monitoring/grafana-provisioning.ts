import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';

/** The provisioned data source's uid; every dashboard panel refers to it. */
export const DATASOURCE_UID = 'ws-prometheus';
/** The dashboard JSON kept in the repository, provisioned as is. */
export const DASHBOARD_FILE = join(__dirname, 'grafana', 'dashboards', 'ws-notifications.json');

/** Grafana's provisioning directory layout (inside the container). */
export const GRAFANA_PATHS = {
  provisioning: '/etc/grafana/provisioning',
  datasources: '/etc/grafana/provisioning/datasources',
  dashboardProviders: '/etc/grafana/provisioning/dashboards',
  dashboards: '/var/lib/grafana/dashboards/ws-notifications',
} as const;

export function readDashboard(): string {
  return readFileSync(DASHBOARD_FILE, 'utf8');
}

/** The Prometheus data source, fixed uid, not editable in the UI (the repository is the source). */
export function renderGrafanaDatasource(prometheusUrl: string, scrapeIntervalMs: number): string {
  return stringify({
    apiVersion: 1,
    datasources: [
      {
        name: 'Prometheus',
        uid: DATASOURCE_UID,
        type: 'prometheus',
        access: 'proxy',
        url: prometheusUrl,
        isDefault: true,
        editable: false,
        // $__rate_interval is at least four scrape intervals: Grafana needs the interval to size it.
        jsonData: { timeInterval: `${Math.round(scrapeIntervalMs / 1000)}s` },
      },
    ],
  });
}

/**
 * Grafana's provisioning files by relative path, the way renderPrometheusFiles returns
 * Prometheus's: the data source, the dashboard provider and the dashboard JSON. Each top-level
 * directory is mounted at its GRAFANA_PATHS place.
 */
export function renderGrafanaFiles(o: { prometheusUrl: string; scrapeIntervalMs: number }): Record<string, string> {
  return {
    [`${GRAFANA_DIRS.datasources}/prometheus.yml`]: renderGrafanaDatasource(o.prometheusUrl, o.scrapeIntervalMs),
    [`${GRAFANA_DIRS.dashboardProviders}/ws-notifications.yml`]: renderDashboardProvider(),
    [`${GRAFANA_DIRS.dashboards}/ws-notifications.json`]: readDashboard(),
  };
}

/** The directories renderGrafanaFiles writes, each mounted at the GRAFANA_PATHS entry of the same key. */
export const GRAFANA_DIRS = { datasources: 'datasources', dashboardProviders: 'dashboards', dashboards: 'dashboard-json' } as const;

const MOUNTED = Object.keys(GRAFANA_DIRS) as (keyof typeof GRAFANA_DIRS)[];

/** Where Grafana reads a file renderGrafanaFiles names ("datasources/prometheus.yml"). */
export function grafanaPathOf(name: string): string {
  const [dir, file] = name.split('/');
  const key = MOUNTED.find((k) => GRAFANA_DIRS[k] === dir);
  if (!key || !file) throw new Error(`${name} is not in a directory Grafana's container mounts`);
  return `${GRAFANA_PATHS[key]}/${file}`;
}

/** The name renderGrafanaFiles gives the file Grafana reads at `path` (grafanaPathOf undone). */
export function grafanaNameOf(path: string): string {
  const key = MOUNTED.find((k) => path.startsWith(`${GRAFANA_PATHS[k]}/`));
  if (!key) throw new Error(`${path} is not in a directory Grafana's container mounts`);
  return `${GRAFANA_DIRS[key]}/${path.slice(GRAFANA_PATHS[key].length + 1)}`;
}

/** Tells Grafana to load every dashboard file in the dashboards directory. */
export function renderDashboardProvider(): string {
  return stringify({
    apiVersion: 1,
    providers: [
      {
        name: 'ws-notifications',
        folder: 'ws-notifications',
        type: 'file',
        disableDeletion: true,
        allowUiUpdates: false,
        updateIntervalSeconds: 30,
        options: { path: GRAFANA_PATHS.dashboards, foldersFromFilesStructure: false },
      },
    ],
  });
}
