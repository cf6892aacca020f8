import { Construct } from 'constructs';
import { Service } from '@cdktf/provider-docker/lib/service';
import { SERVER_NAME } from '../../app/src/topology';
import { serverSpec } from '../../components/server';
import { containerLabels } from '../container-attributes';
import { BROKER_PASSWORD_PATH, CONTROL_KEY_PATH } from '../server-fleet';
import { BROKER_USERS } from '../../components/broker-auth';
import type { SwarmFile } from './swarm-files';
import { dnsrrEndpoint, SERVICE_ROLLOUT, taskContainerOf, type SwarmServiceProps } from './service-attributes';

/** The servers' service on the swarm target; its tasks are `ws-server.<slot>.<id>`. */
export const SERVER_SERVICE = SERVER_NAME;

/** The app image's user (`USER node`: uid and gid 1000 in node:20 and in the offline stand-in); it reads the control key. */
export const SERVER_USER_ID = '1000';

export interface ServerServiceProps extends SwarmServiceProps {
  /** The app image, by name: every node must have it (a registry, or loaded into each). */
  readonly image: string;
  /** The control key (tls.controlKey) as a secret, at CONTROL_KEY_PATH in every task. */
  readonly controlKey: SwarmFile;
  /**
   * The replicas' broker password as a secret, at BROKER_PASSWORD_PATH in every task.
   * @default none: no broker
   */
  readonly brokerPassword?: SwarmFile;
}

/**
 * The servers as one Docker Swarm service (`target: 'swarm'`), its replica count the topology's:
 * changing it in code updates the service in place. Each task's replica id comes from its slot
 * (`ws-server-<slot>`, a Go template Swarm fills in), so metrics and hellos name replicas as on
 * the engine target.
 *
 * Rolling updates (SERVICE_ROLLOUT), chosen for WebSockets: one task at a time, stop-first, so
 * a task drains (1001 to its clients, who reconnect to the others) within its stop grace before
 * its replacement starts, and capacity dips by one task at a time; the health check gates it (a
 * task counts once /healthz answers), and a version that never turns healthy is rolled back.
 * Endpoint mode dnsrr: `tasks.ws-server` and the service name resolve to every task's address,
 * which is what the proxy balances over (no virtual IP in between).
 */
export class ServerService extends Construct {
  readonly service: Service;

  constructor(scope: Construct, id: string, props: ServerServiceProps) {
    super(scope, id);
    const { topology } = props;
    // The engine target's spec and check, as the service's: a rollout waits for the check.
    const spec = serverSpec(topology, {
      replicaId: `${SERVER_SERVICE}-{{.Task.Slot}}`,
      controlKeyFile: CONTROL_KEY_PATH,
      ...(props.brokerPassword ? { brokerCredentials: { user: BROKER_USERS.replica, passwordFile: BROKER_PASSWORD_PATH } } : {}),
    });
    this.service = new Service(this, 'service', {
      name: SERVER_SERVICE,
      labels: containerLabels(props.labels),
      taskSpec: {
        containerSpec: {
          image: props.image,
          ...taskContainerOf(spec),
          secrets: [
            props.controlKey.asSecret(CONTROL_KEY_PATH, SERVER_USER_ID),
            ...(props.brokerPassword ? [props.brokerPassword.asSecret(BROKER_PASSWORD_PATH, SERVER_USER_ID)] : []),
          ],
        },
        networksAdvanced: [{ name: props.networkName }],
        restartPolicy: { condition: 'any', delay: '1s' },
      },
      mode: { replicated: { replicas: topology.replicas } },
      endpointSpec: dnsrrEndpoint(),
      ...SERVICE_ROLLOUT,
      dependsOn: props.after,
    });
  }
}
