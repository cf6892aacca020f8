import { Construct } from 'constructs';
import { Container } from '@cdktf/provider-docker/lib/container';
import { GRAFANA_PORT, grafanaSpec } from '../../components/monitoring';
import { GRAFANA_DIRS, GRAFANA_PATHS, grafanaNameOf } from '../../monitoring/grafana-provisioning';
import { ConfigFiles } from '../config-files';
import { containerLabels, containerOf } from '../container-attributes';
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
    const spec = grafanaSpec(props.topology, {
      prometheusUrl: `http://${monitoring.prometheusContainerName}:${MONITORING_PATHS.prometheusPort}`,
    });
    const files = new ConfigFiles(this, 'config', {
      dir: props.configDir,
      files: Object.fromEntries((spec.files ?? []).map((f) => [grafanaNameOf(f.path), f.content])),
    });
    movedFrom(files.resource, ADDRESSES_BEFORE_0_2.grafanaConfig);
    const image = movedFrom(pulledImage(this, 'image', images.grafana), ADDRESSES_BEFORE_0_2.grafanaImage);
    this.container = movedFrom(
      new Container(this, 'container', {
        name: monitoring.grafanaContainerName,
        image: image.imageId,
        ...containerOf(spec),
        // Published on 127.0.0.1 only.
        ports: [{ internal: GRAFANA_PORT, external: monitoring.grafanaPort, ip: '127.0.0.1' }],
        volumes: (['datasources', 'dashboardProviders', 'dashboards'] as const).map((key) => ({
          hostPath: `${props.configDir}/${GRAFANA_DIRS[key]}`,
          containerPath: GRAFANA_PATHS[key],
          readOnly: true,
        })),
        networksAdvanced: [{ name: props.networkName, aliases: [monitoring.grafanaContainerName] }],
        restart: 'unless-stopped',
        wait: true,
        waitTimeout: 120,
        labels: containerLabels(props.labels),
        dependsOn: [files.resource, props.prometheus],
      }),
      ADDRESSES_BEFORE_0_2.grafana,
    );
  }
}
