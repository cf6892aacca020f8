import { Construct } from 'constructs';
import { DataResource, type ITerraformDependable } from 'cdktf';
import { Container } from '@cdktf/provider-docker/lib/container';
import { Image } from '@cdktf/provider-docker/lib/image';
import type { Topology } from '../../app/src/topology';
import { ConfigFiles } from '../config-files';
import { PROXY_PATHS } from '../nginx-proxy';
import { GRAFANA_DIRS, GRAFANA_PATHS, renderGrafanaFiles } from '../../monitoring/grafana-provisioning';
import { nginxExporterArgs, PROMETHEUS_CONFIG_FILE, prometheusArgs, renderPrometheusFiles } from '../../monitoring/prometheus';
import { containerLabels, httpHealthcheck } from '../container-attributes';

export interface MonitoringProps {
  readonly topology: Topology;
  readonly networkName: string;
  /** Replica container names, in order. */
  readonly replicas: string[];
  /** Host name of the load-client job container (scraped while it runs). */
  readonly loadClientHost: string;
  /** Host directory for the rendered Prometheus and Grafana files (bind-mounted read-only). */
  readonly configDir: string;
  /** Done once the proxy serves stub_status (the exporter starts after it). */
  readonly proxyReady: ITerraformDependable;
  readonly labels: Record<string, string>;
}

/** Where things are inside the monitoring containers. */
const MONITORING_PATHS = {
  prometheusConfigDir: '/etc/prometheus/ws',
  prometheusData: '/prometheus',
  prometheusPort: 9090,
  grafanaPort: 3000,
} as const;

/**
 * Prometheus, the nginx exporter and (optionally) Grafana. Like the proxy, Prometheus's
 * container does not depend on the replica count: the scrape config is a bind-mounted file,
 * rewritten on change and picked up with SIGHUP after `promtool check config` passes, so
 * scaling keeps the collected history. The images are pulled, not built: the configs are
 * mounted, and the offline base images stand in for Prometheus and the exporter.
 */
export class Monitoring extends Construct {
  readonly prometheus: Container;
  readonly exporter: Container;
  readonly grafana?: Container;
  /** Done once the current scrape config and rules are live. */
  readonly reload: DataResource;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    // One function per component, each creating its resources in this scope: nested constructs
    // would change every resource's Terraform address, and a deployed Prometheus would be
    // replaced (losing its history) on upgrade.
    const shared = { props, labels: containerLabels(props.labels), pulled: pulledImage(this) };
    ({ container: this.prometheus, reload: this.reload } = prometheusServer(this, shared));
    this.exporter = nginxExporter(this, shared);
    if (props.topology.monitoring.grafana) this.grafana = grafana(this, shared, this.prometheus);
  }
}

interface Shared {
  props: MonitoringProps;
  labels: ReturnType<typeof containerLabels>;
  /** The image id of a pulled image. */
  pulled: (imageId: string, name: string) => string;
}

/** Pulled images stay on destroy: they are a download cache (and the offline stand-ins cannot be pulled again). */
const pulledImage = (scope: Construct) => (imageId: string, name: string) => new Image(scope, imageId, { name, keepLocally: true }).imageId;

/** Prometheus: its rendered files, its container, and the reload that validates and applies a new config. */
function prometheusServer(scope: Construct, { props, labels, pulled }: Shared): { container: Container; reload: DataResource } {
  const { monitoring, images, server } = props.topology;
  const dir = `${props.configDir}/prometheus`;
  const files = new ConfigFiles(scope, 'prometheus-config', {
    dir,
    files: renderPrometheusFiles(props.topology, {
      servers: props.replicas.map((replica) => ({ replica, target: `${replica}:${server.port}` })),
      nginxExporter: `${monitoring.exporterContainerName}:${monitoring.exporterPort}`,
      loadClient: `${props.loadClientHost}:${monitoring.loadMetricsPort}`,
      self: `localhost:${MONITORING_PATHS.prometheusPort}`,
    }),
  });
  const container = new Container(scope, 'prometheus', {
    name: monitoring.prometheusContainerName,
    image: pulled('prometheus-image', images.prometheus),
    // The image's entrypoint is the prometheus binary; these replace its default flags.
    command: prometheusArgs({
      configDir: MONITORING_PATHS.prometheusConfigDir,
      dataDir: MONITORING_PATHS.prometheusData,
      retention: monitoring.retention,
      listen: `:${MONITORING_PATHS.prometheusPort}`,
    }),
    ports: [{ internal: MONITORING_PATHS.prometheusPort, external: monitoring.prometheusPort, ip: '127.0.0.1' }],
    volumes: [{ hostPath: dir, containerPath: MONITORING_PATHS.prometheusConfigDir, readOnly: true }],
    networksAdvanced: [{ name: props.networkName, aliases: [monitoring.prometheusContainerName] }],
    restart: 'unless-stopped',
    healthcheck: httpHealthcheck(`http://127.0.0.1:${MONITORING_PATHS.prometheusPort}/-/ready`, 'wget', { startPeriod: '5s', retries: 5 }),
    wait: true,
    waitTimeout: 90,
    labels,
    dependsOn: [files.resource],
  });
  // On every config change (replicas, thresholds): validate, then reload without a restart.
  const reload = new DataResource(scope, 'prometheus-reload', {
    triggersReplace: { sha256: files.sha256 },
    dependsOn: [container, files.resource],
    provisioners: [
      {
        type: 'local-exec',
        command: `docker exec "$PROMETHEUS" promtool check config ${MONITORING_PATHS.prometheusConfigDir}/${PROMETHEUS_CONFIG_FILE} >/dev/null && docker kill --signal=HUP "$PROMETHEUS" >/dev/null`,
        environment: { PROMETHEUS: monitoring.prometheusContainerName },
      },
    ],
  });
  return { container, reload };
}

/** The nginx exporter, reading stub_status on the proxy's internal port once the proxy serves it. */
function nginxExporter(scope: Construct, { props, labels, pulled }: Shared): Container {
  const { monitoring, images, proxy } = props.topology;
  return new Container(scope, 'nginx-exporter', {
    name: monitoring.exporterContainerName,
    image: pulled('nginx-exporter-image', images.nginxExporter),
    command: nginxExporterArgs({ proxy: `${proxy.containerName}:${PROXY_PATHS.httpPort}`, listen: `:${monitoring.exporterPort}` }),
    networksAdvanced: [{ name: props.networkName, aliases: [monitoring.exporterContainerName] }],
    restart: 'unless-stopped',
    labels,
    dependsOn: [props.proxyReady],
  });
}

/** Grafana with its provisioned data source and dashboard, read-only for anonymous viewers. */
function grafana(scope: Construct, { props, labels, pulled }: Shared, prometheus: Container): Container {
  const { monitoring, images } = props.topology;
  const dir = `${props.configDir}/grafana`;
  const files = new ConfigFiles(scope, 'grafana-config', {
    dir,
    files: renderGrafanaFiles({ prometheusUrl: `http://${monitoring.prometheusContainerName}:${MONITORING_PATHS.prometheusPort}`, scrapeIntervalMs: monitoring.scrapeIntervalMs }),
  });
  return new Container(scope, 'grafana', {
    name: monitoring.grafanaContainerName,
    image: pulled('grafana-image', images.grafana),
    env: [
      // Read-only viewing without a login; the admin account (admin/admin, changed at first
      // login) can still sign in. The port is published on 127.0.0.1 only.
      'GF_AUTH_ANONYMOUS_ENABLED=true',
      'GF_AUTH_ANONYMOUS_ORG_ROLE=Viewer',
      'GF_ANALYTICS_REPORTING_ENABLED=false',
      'GF_ANALYTICS_CHECK_FOR_UPDATES=false',
      'GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH=' + `${GRAFANA_PATHS.dashboards}/ws-notifications.json`,
    ],
    ports: [{ internal: MONITORING_PATHS.grafanaPort, external: monitoring.grafanaPort, ip: '127.0.0.1' }],
    volumes: (['datasources', 'dashboardProviders', 'dashboards'] as const).map((key) => ({
      hostPath: `${dir}/${GRAFANA_DIRS[key]}`,
      containerPath: GRAFANA_PATHS[key],
      readOnly: true,
    })),
    networksAdvanced: [{ name: props.networkName, aliases: [monitoring.grafanaContainerName] }],
    restart: 'unless-stopped',
    healthcheck: httpHealthcheck(`http://127.0.0.1:${MONITORING_PATHS.grafanaPort}/api/health`, 'wget', { startPeriod: '10s', retries: 10 }),
    wait: true,
    waitTimeout: 120,
    labels,
    dependsOn: [files.resource, prometheus],
  });
}
