import { Construct } from 'constructs';
import { Service } from '@cdktf/provider-docker/lib/service';
import { tasksOf } from '../../app/src/topology';
import { prometheusArgs, renderPrometheusFiles } from '../../monitoring/prometheus';
import { containerLabels, httpHealthcheck } from '../container-attributes';
import { MONITORING_PATHS } from '../monitoring/component';
import { dnsrrEndpoint, ON_A_MANAGER, SERVICE_ROLLOUT, type SwarmServiceProps } from './service-attributes';
import { SwarmFile } from './swarm-files';

export interface MonitoringServiceProps extends SwarmServiceProps {
  /** The servers' service and the load job's: Prometheus finds their tasks by DNS. */
  readonly serversService: string;
  readonly loadService: string;
}

/**
 * Prometheus on the swarm target: one task on a manager, its port published there (host mode).
 * It discovers the servers' tasks by DNS (`tasks.ws-server`, re-resolved every scrape interval),
 * so a scale changes what it scrapes without a new config; the alert rules are the engine
 * target's. Its config is a docker_config: no node needs the deploying machine's files.
 */
export class MonitoringService extends Construct {
  readonly service: Service;
  readonly files: Record<string, string>;

  constructor(scope: Construct, id: string, props: MonitoringServiceProps) {
    super(scope, id);
    const { topology } = props;
    const { monitoring, server } = topology;
    this.files = renderPrometheusFiles(topology, {
      servers: { dns: tasksOf(props.serversService), port: server.port },
      loadClient: { dns: tasksOf(props.loadService), port: monitoring.loadMetricsPort },
      self: `127.0.0.1:${MONITORING_PATHS.prometheusPort}`,
    });
    const configs = Object.entries(this.files).map(([name, content]) =>
      new SwarmFile(this, name, {
        stem: `${monitoring.prometheusContainerName}-${name.replace(/\W/g, '-')}`,
        content,
        labels: props.labels,
      }).asConfig(`${MONITORING_PATHS.prometheusConfigDir}/${name}`),
    );
    this.service = new Service(this, 'service', {
      name: monitoring.prometheusContainerName,
      labels: containerLabels(props.labels),
      taskSpec: {
        containerSpec: {
          image: topology.images.prometheus,
          args: prometheusArgs({
            configDir: MONITORING_PATHS.prometheusConfigDir,
            dataDir: MONITORING_PATHS.prometheusData,
            retention: monitoring.retention,
            listen: `:${MONITORING_PATHS.prometheusPort}`,
          }),
          configs,
          healthcheck: httpHealthcheck(`http://127.0.0.1:${MONITORING_PATHS.prometheusPort}/-/ready`, 'wget', {
            startPeriod: '5s',
            retries: 5,
          }),
        },
        networksAdvanced: [{ name: props.networkName }],
        restartPolicy: { condition: 'any', delay: '2s' },
        placement: ON_A_MANAGER,
      },
      mode: { replicated: { replicas: 1 } },
      endpointSpec: dnsrrEndpoint({ target: MONITORING_PATHS.prometheusPort, published: monitoring.prometheusPort }),
      ...SERVICE_ROLLOUT,
    });
  }
}
