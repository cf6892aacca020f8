import { Construct } from 'constructs';
import type { ITerraformDependable } from 'cdktf';
import { Container } from '@cdktf/provider-docker/lib/container';
import { replicaName, SERVER_NAME } from '../app/src/topology';
import { serverSpec } from '../components/server';
import { BROKER_USERS } from '../components/broker-auth';
import { containerLabels, containerOf, type EngineContainerProps } from './container-attributes';

/** Reads the topology's `replicas` and `server`. */
export interface ServerFleetProps extends EngineContainerProps {
  readonly imageId: string;
  /**
   * Started (and healthy) before any replica: the broker, when there is one.
   * @default nothing
   */
  readonly after?: ITerraformDependable[];
  /** The control key's file on this machine (tls.controlKey), bind-mounted read-only at CONTROL_KEY_PATH. */
  readonly controlKeyFile: string;
  /**
   * The replicas' broker password on this machine, bind-mounted read-only at BROKER_PASSWORD_PATH.
   * @default none: they connect without credentials (no broker, or one open to all)
   */
  readonly brokerPasswordFile?: string;
  /**
   * The publish API's key on this machine (server.apiKeyFile, made absolute), bind-mounted read-only at API_KEY_PATH.
   * @default none: the API is off
   */
  readonly apiKeyFile?: string;
}

/** Where a container finds the publish API's key (a replica, and the load job publishing through the API). */
export const API_KEY_PATH = '/run/secrets/api-key';

/** Where a server container finds its broker password. */
export const BROKER_PASSWORD_PATH = '/run/secrets/nats-password';

/** Where a server container (or task) finds the control key: a read-only mount, or a swarm secret. */
export const CONTROL_KEY_PATH = '/run/secrets/control.key';

/** N WebSocket server containers, ws-server-0..N-1, each a replica of the same image. */
export class ServerFleet extends Construct {
  readonly containers: Container[] = [];
  readonly names: string[] = [];

  constructor(scope: Construct, id: string, props: ServerFleetProps) {
    super(scope, id);
    const brokerCredentials = props.brokerPasswordFile ? { user: BROKER_USERS.replica, passwordFile: BROKER_PASSWORD_PATH } : undefined;
    for (let i = 0; i < props.topology.replicas; i++) {
      // The construct id is the name too, so ids are stable per index.
      const name = replicaName(i);
      // With the broker on, every replica connects to it (no variables: per-replica fan-out).
      const container = new Container(this, name, {
        name,
        image: props.imageId,
        // SIGTERM drains (1001 spread over the window); Docker kills after the stop grace.
        ...containerOf(
          serverSpec(props.topology, {
            replicaId: name,
            controlKeyFile: CONTROL_KEY_PATH,
            brokerCredentials,
            ...(props.apiKeyFile ? { apiKeyFile: API_KEY_PATH } : {}),
          }),
        ),
        networksAdvanced: [{ name: props.networkName, aliases: [SERVER_NAME] }],
        volumes: [
          { hostPath: props.controlKeyFile, containerPath: CONTROL_KEY_PATH, readOnly: true },
          ...(props.brokerPasswordFile
            ? [{ hostPath: props.brokerPasswordFile, containerPath: BROKER_PASSWORD_PATH, readOnly: true }]
            : []),
          ...(props.apiKeyFile ? [{ hostPath: props.apiKeyFile, containerPath: API_KEY_PATH, readOnly: true }] : []),
        ],
        restart: 'unless-stopped',
        // A replica that never turns healthy fails the deploy, naming this resource.
        wait: true,
        waitTimeout: 60,
        labels: containerLabels({ ...props.labels, 'ws-notifications.replica': String(i) }),
        dependsOn: props.after,
      });
      this.containers.push(container);
      this.names.push(name);
    }
  }
}
