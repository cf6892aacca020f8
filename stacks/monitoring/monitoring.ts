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
    const { topology } = props;
    const { monitoring, images, server, proxy } = topology;
    const labels = containerLabels(props.labels);
    // Pulled images stay on destroy: they are a download cache (and the offline stand-ins cannot be pulled again).
    const pulled = (imageId: string, name: string) => new Image(this, imageId, { name, keepLocally: true }).imageId;

    const prometheusDir = `${props.configDir}/prometheus`;
    const grafanaDir = `${props.configDir}/grafana`;

    const prometheusFiles = new ConfigFiles(this, 'prometheus-config', {
      dir: prometheusDir,
      files: renderPrometheusFiles(topology, {
        servers: props.replicas.map((replica) => ({ replica, target: `${replica}:${server.port}` })),
        nginxExporter: `${monitoring.exporterContainerName}:${monitoring.exporterPort}`,
        loadClient: `${props.loadClientHost}:${monitoring.loadMetricsPort}`,
        self: `localhost:${MONITORING_PATHS.prometheusPort}`,
      }),
    });

    this.prometheus = new Container(this, 'prometheus', {
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
      volumes: [{ hostPath: prometheusDir, containerPath: MONITORING_PATHS.prometheusConfigDir, readOnly: true }],
      networksAdvanced: [{ name: props.networkName, aliases: [monitoring.prometheusContainerName] }],
      restart: 'unless-stopped',
      healthcheck: httpHealthcheck(`http://127.0.0.1:${MONITORING_PATHS.prometheusPort}/-/ready`, 'wget', { startPeriod: '5s', retries: 5 }),
      wait: true,
      waitTimeout: 90,
      labels,
      dependsOn: [prometheusFiles.resource],
    });

    // On every config change (replicas, thresholds): validate, then reload without a restart.
    this.reload = new DataResource(this, 'prometheus-reload', {
      triggersReplace: { sha256: prometheusFiles.sha256 },
      dependsOn: [this.prometheus, prometheusFiles.resource],
      provisioners: [
        {
          type: 'local-exec',
          command: `docker exec "$PROMETHEUS" promtool check config ${MONITORING_PATHS.prometheusConfigDir}/${PROMETHEUS_CONFIG_FILE} >/dev/null && docker kill --signal=HUP "$PROMETHEUS" >/dev/null`,
          environment: { PROMETHEUS: monitoring.prometheusContainerName },
        },
      ],
    });

    this.exporter = new Container(this, 'nginx-exporter', {
      name: monitoring.exporterContainerName,
      image: pulled('nginx-exporter-image', images.nginxExporter),
      command: nginxExporterArgs({ proxy: `${proxy.containerName}:${PROXY_PATHS.httpPort}`, listen: `:${monitoring.exporterPort}` }),
      networksAdvanced: [{ name: props.networkName, aliases: [monitoring.exporterContainerName] }],
      restart: 'unless-stopped',
      labels,
      dependsOn: [props.proxyReady],
    });

    if (monitoring.grafana) {
      const grafanaFiles = new ConfigFiles(this, 'grafana-config', {
        dir: grafanaDir,
        files: renderGrafanaFiles({ prometheusUrl: `http://${monitoring.prometheusContainerName}:${MONITORING_PATHS.prometheusPort}`, scrapeIntervalMs: monitoring.scrapeIntervalMs }),
      });
      this.grafana = new Container(this, 'grafana', {
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
          hostPath: `${grafanaDir}/${GRAFANA_DIRS[key]}`,
          containerPath: GRAFANA_PATHS[key],
          readOnly: true,
        })),
        networksAdvanced: [{ name: props.networkName, aliases: [monitoring.grafanaContainerName] }],
        restart: 'unless-stopped',
        healthcheck: httpHealthcheck(`http://127.0.0.1:${MONITORING_PATHS.grafanaPort}/api/health`, 'wget', { startPeriod: '10s', retries: 10 }),
        wait: true,
        waitTimeout: 120,
        labels,
        dependsOn: [grafanaFiles.resource, this.prometheus],
      });
    }
  }
}
