import { basename } from 'node:path';
import { Construct } from 'constructs';
import { filesByName } from '../../components/spec';
import { Service } from '@cdktf/provider-docker/lib/service';
import { tasksOf } from '../../app/src/topology';
import { prometheusSpec } from '../../components/monitoring';
import { containerLabels } from '../container-attributes';
import { MONITORING_PATHS } from '../monitoring/component';
import { dnsrrEndpoint, ON_A_MANAGER, SERVICE_ROLLOUT, taskContainerOf, type SwarmServiceProps } from './service-attributes';
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
    const spec = prometheusSpec(topology, {
      configDir: MONITORING_PATHS.prometheusConfigDir,
      dataDir: MONITORING_PATHS.prometheusData,
      port: MONITORING_PATHS.prometheusPort,
      targets: {
        servers: { dns: tasksOf(props.serversService), port: server.port },
        loadClient: { dns: tasksOf(props.loadService), port: monitoring.loadMetricsPort },
        self: `127.0.0.1:${MONITORING_PATHS.prometheusPort}`,
      },
    });
    this.files = filesByName(spec);
    const configs = (spec.files ?? []).map((f) =>
      new SwarmFile(this, basename(f.path), {
        stem: `${monitoring.prometheusContainerName}-${basename(f.path).replace(/\W/g, '-')}`,
        content: f.content,
        labels: props.labels,
      }).asConfig(f.path),
    );
    this.service = new Service(this, 'service', {
      name: monitoring.prometheusContainerName,
      labels: containerLabels(props.labels),
      taskSpec: {
        containerSpec: {
          image: topology.images.prometheus,
          ...taskContainerOf(spec),
          configs,
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
