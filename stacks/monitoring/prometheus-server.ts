import { Construct } from 'constructs';
import { filesByName } from '../../components/spec';
import { DataResource } from 'cdktf';
import { Container } from '@cdktf/provider-docker/lib/container';
import { PROMETHEUS_CONFIG_FILE } from '../../monitoring/prometheus';
import { prometheusSpec } from '../../components/monitoring';
import { ConfigFiles } from '../config-files';
import { proxyNames } from '../../app/src/topology';
import { PROXY_PATHS } from '../nginx-proxy';
import { containerLabels, containerOf } from '../container-attributes';
import { ADDRESSES_BEFORE_0_2, MONITORING_PATHS, movedFrom, type ComponentProps } from './component';
import { pulledImage } from '../local-image';

export interface PrometheusServerProps extends ComponentProps {
  /** Replica container names, in order (one target each). */
  readonly replicas: string[];
  /** Host name of the load-client job container (scraped while it runs). */
  readonly loadClientHost: string;
  /** Host directory for the rendered prometheus.yml and rules (bind-mounted read-only). */
  readonly configDir: string;
}

/**
 * Prometheus: its rendered files, its container, and the reload that validates and applies a new
 * config. Like the proxy, the container does not depend on the replica count: a changed config is
 * rewritten, checked with `promtool check config` inside the container and picked up with SIGHUP,
 * so scaling keeps the collected history.
 */
export class PrometheusServer extends Construct {
  readonly container: Container;
  /** Done once the current scrape config and rules are live. */
  readonly reload: DataResource;

  constructor(scope: Construct, id: string, props: PrometheusServerProps) {
    super(scope, id);
    const { monitoring, images, server } = props.topology;
    const spec = prometheusSpec(props.topology, {
      configDir: MONITORING_PATHS.prometheusConfigDir,
      dataDir: MONITORING_PATHS.prometheusData,
      port: MONITORING_PATHS.prometheusPort,
      targets: {
        servers: props.replicas.map((replica) => ({ replica, target: `${replica}:${server.port}` })),
        nginxExporter: `${monitoring.exporterContainerName}:${monitoring.exporterPort}`,
        loadClient: `${props.loadClientHost}:${monitoring.loadMetricsPort}`,
        self: `localhost:${MONITORING_PATHS.prometheusPort}`,
        ...(props.topology.proxy.ha.enabled
          ? { haProxies: proxyNames(props.topology.proxy).map((proxy) => ({ proxy, target: `${proxy}:${PROXY_PATHS.httpPort}` })) }
          : {}),
      },
    });
    const files = new ConfigFiles(this, 'config', {
      dir: props.configDir,
      files: filesByName(spec),
    });
    movedFrom(files.resource, ADDRESSES_BEFORE_0_2.prometheusConfig);
    const image = movedFrom(pulledImage(this, 'image', images.prometheus), ADDRESSES_BEFORE_0_2.prometheusImage);
    this.container = movedFrom(
      new Container(this, 'container', {
        name: monitoring.prometheusContainerName,
        image: image.imageId,
        // The image's entrypoint is the prometheus binary; these replace its default flags.
        ...containerOf(spec),
        ports: [{ internal: MONITORING_PATHS.prometheusPort, external: monitoring.prometheusPort, ip: '127.0.0.1' }],
        volumes: [{ hostPath: props.configDir, containerPath: MONITORING_PATHS.prometheusConfigDir, readOnly: true }],
        networksAdvanced: [{ name: props.networkName, aliases: [monitoring.prometheusContainerName] }],
        restart: 'unless-stopped',
        wait: true,
        waitTimeout: 90,
        labels: containerLabels(props.labels),
        dependsOn: [files.resource],
      }),
      ADDRESSES_BEFORE_0_2.prometheus,
    );
    this.reload = this.reloadStep(props, files);
  }

  /** On every config change (replicas, thresholds): validate, then reload without a restart. */
  private reloadStep(props: PrometheusServerProps, files: ConfigFiles): DataResource {
    const { monitoring } = props.topology;
    return movedFrom(
      new DataResource(this, 'reload', {
        triggersReplace: { sha256: files.sha256 },
        dependsOn: [this.container, files.resource],
        provisioners: [
          {
            type: 'local-exec',
            command:
              `docker exec "$PROMETHEUS" promtool check config ` +
              `${MONITORING_PATHS.prometheusConfigDir}/${PROMETHEUS_CONFIG_FILE} >/dev/null && docker kill --signal=HUP "$PROMETHEUS" >/dev/null`,
            environment: { PROMETHEUS: monitoring.prometheusContainerName },
          },
        ],
      }),
      ADDRESSES_BEFORE_0_2.prometheusReload,
    );
  }
}
