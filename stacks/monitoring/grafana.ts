import { Construct } from 'constructs';
import { Container } from '@cdktf/provider-docker/lib/container';
import { GRAFANA_DIRS, GRAFANA_PATHS, renderGrafanaFiles } from '../../monitoring/grafana-provisioning';
import { ConfigFiles } from '../config-files';
import { containerLabels, httpHealthcheck } from '../container-attributes';
import { ADDRESSES_BEFORE_0_2, MONITORING_PATHS, movedFrom, type ComponentProps } from './component';
import { pulledImage } from '../local-image';

export interface GrafanaProps extends ComponentProps {
  /** Host directory for the provisioning files (bind-mounted read-only). */
  readonly configDir: string;
  /** Grafana starts after Prometheus, its data source. */
  readonly prometheus: Container;
}

/** Grafana with its provisioned data source and dashboard, read-only for anonymous viewers. */
export class Grafana extends Construct {
  readonly container: Container;

  constructor(scope: Construct, id: string, props: GrafanaProps) {
    super(scope, id);
    const { monitoring, images } = props.topology;
    const files = new ConfigFiles(this, 'config', {
      dir: props.configDir,
      files: renderGrafanaFiles({
        prometheusUrl: `http://${monitoring.prometheusContainerName}:${MONITORING_PATHS.prometheusPort}`,
        scrapeIntervalMs: monitoring.scrapeIntervalMs,
      }),
    });
    movedFrom(files.resource, ADDRESSES_BEFORE_0_2.grafanaConfig);
    const image = movedFrom(pulledImage(this, 'image', images.grafana), ADDRESSES_BEFORE_0_2.grafanaImage);
    this.container = movedFrom(
      new Container(this, 'container', {
        name: monitoring.grafanaContainerName,
        image: image.imageId,
        env: [
          // Read-only viewing without a login; the admin account (admin/admin, changed at first
          // login) can still sign in. The port is published on 127.0.0.1 only.
          'GF_AUTH_ANONYMOUS_ENABLED=true',
          'GF_AUTH_ANONYMOUS_ORG_ROLE=Viewer',
          'GF_ANALYTICS_REPORTING_ENABLED=false',
          'GF_ANALYTICS_CHECK_FOR_UPDATES=false',
          `GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH=${GRAFANA_PATHS.dashboards}/ws-notifications.json`,
        ],
        ports: [{ internal: MONITORING_PATHS.grafanaPort, external: monitoring.grafanaPort, ip: '127.0.0.1' }],
        volumes: (['datasources', 'dashboardProviders', 'dashboards'] as const).map((key) => ({
          hostPath: `${props.configDir}/${GRAFANA_DIRS[key]}`,
          containerPath: GRAFANA_PATHS[key],
          readOnly: true,
        })),
        networksAdvanced: [{ name: props.networkName, aliases: [monitoring.grafanaContainerName] }],
        restart: 'unless-stopped',
        healthcheck: httpHealthcheck(`http://127.0.0.1:${MONITORING_PATHS.grafanaPort}/api/health`, 'wget', {
          startPeriod: '10s',
          retries: 10,
        }),
        wait: true,
        waitTimeout: 120,
        labels: containerLabels(props.labels),
        dependsOn: [files.resource, props.prometheus],
      }),
      ADDRESSES_BEFORE_0_2.grafana,
    );
  }
}
