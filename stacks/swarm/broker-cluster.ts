import { Construct } from 'constructs';
import { Service } from '@cdktf/provider-docker/lib/service';
import { BROKER_CONTAINER, tasksOf } from '../../app/src/topology';
import { containerLabels } from '../container-attributes';
import { BROKER_PATHS } from '../broker';
import { dnsrrEndpoint, SERVICE_ROLLOUT, taskContainerOf, type SwarmServiceProps } from './service-attributes';
import { brokerSpec } from '../../components/broker';
import { withStopGrace } from '../../components/spec';
import type { SwarmFile } from './swarm-files';

/** The cluster's route port (nats-server's default). */
const ROUTE_PORT = 6222;

export interface BrokerClusterProps extends SwarmServiceProps {
  /** Its users (components/broker-auth.ts) as a secret, at BROKER_PATHS.authFile in every task. */
  readonly users: SwarmFile;
  /**
   * How long nats-server gets to leave the cluster and flush on stop.
   * @default BROKER_STOP_GRACE_MS (10 s)
   */
  readonly stopGraceMs?: number;
}

/**
 * The broker on the swarm target: a NATS cluster of `swarm.brokerNodes` nats-servers, one
 * service whose tasks are `ws-nats-<slot>`, at most one per node (placement), so losing a node
 * loses one server. The stream is kept on streamReplicas(topology) of them (3): a majority keeps
 * JetStream's quorum, and every stored notification survives a lost node.
 *
 * Each server finds the others through `tasks.ws-nats` (one address per task: nats-server picks
 * one per attempt and learns the rest from it), and the replicas reach it by the service name,
 * which resolves the same way (endpoint mode dnsrr). A task's store lives on its own filesystem:
 * a replacement starts empty and catches up from the other two, which is what R3 is for.
 * Clients connect only as one of its users (a secret); the routes between servers are on the
 * overlay, which only the stack's services join.
 */
export class BrokerCluster extends Construct {
  readonly service: Service;

  constructor(scope: Construct, id: string, props: BrokerClusterProps) {
    super(scope, id);
    const { topology } = props;
    const name = BROKER_CONTAINER;
    const slotName = `${name}-{{.Task.Slot}}`;
    const spec = brokerSpec({
      store: BROKER_PATHS.store,
      port: BROKER_PATHS.clientPort,
      monitoringPort: BROKER_PATHS.monitoringPort,
      serverName: '"$NATS_SERVER_NAME"',
      cluster: { name, listen: `nats://0.0.0.0:${ROUTE_PORT}`, routes: `nats-route://${tasksOf(name)}:${ROUTE_PORT}` },
      authFile: BROKER_PATHS.authFile,
    });
    this.service = new Service(this, 'service', {
      name,
      labels: containerLabels(props.labels),
      taskSpec: {
        containerSpec: {
          image: topology.images.nats,
          hostname: slotName,
          // A shell only to read the server name Swarm templated into the environment.
          ...taskContainerOf({ ...withStopGrace(spec, props.stopGraceMs), env: { NATS_SERVER_NAME: slotName } }, { shell: true }),
          secrets: [props.users.asSecret(BROKER_PATHS.authFile)],
        },
        networksAdvanced: [{ name: props.networkName }],
        restartPolicy: { condition: 'any', delay: '2s' },
        placement: { maxReplicas: 1 },
      },
      mode: { replicated: { replicas: topology.swarm.brokerNodes } },
      endpointSpec: dnsrrEndpoint(),
      ...SERVICE_ROLLOUT,
    });
  }
}
