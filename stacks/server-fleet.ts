import { Construct } from 'constructs';
import type { ITerraformDependable } from 'cdktf';
import { Container } from '@cdktf/provider-docker/lib/container';
import { CONTROL_KEY_ENV, replicaName, SERVER_NAME, stopGraceMs, toBrokerEnv, toServerEnv, type Topology } from '../app/src/topology';
import { containerEnv, containerLabels, httpHealthcheck, stopAttributes, type EngineContainerProps } from './container-attributes';

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
}

/** Where a server container (or task) finds the control key: a read-only mount, or a swarm secret. */
export const CONTROL_KEY_PATH = '/run/secrets/control.key';

/** Where a server answers its health check, from inside its container (or task). */
export function serverHealthUrl(server: Topology['server']): string {
  return `http://127.0.0.1:${server.port}/healthz`;
}

/** How a server container (or task) starts: the image's built server. */
export const SERVER_COMMAND = ['node', 'dist/server/main.js'];

/** N WebSocket server containers, ws-server-0..N-1, each a replica of the same image. */
export class ServerFleet extends Construct {
  readonly containers: Container[] = [];
  readonly names: string[] = [];

  constructor(scope: Construct, id: string, props: ServerFleetProps) {
    super(scope, id);
    const { server, replicas } = props.topology;
    const healthUrl = serverHealthUrl(server);
    for (let i = 0; i < replicas; i++) {
      // The construct id is the name too, so ids are stable per index.
      const name = replicaName(i);
      // With the broker on, every replica connects to it (no variables: per-replica fan-out).
      const env = { ...toServerEnv(server, name), ...toBrokerEnv(props.topology), [CONTROL_KEY_ENV]: CONTROL_KEY_PATH };
      const container = new Container(this, name, {
        name,
        image: props.imageId,
        command: SERVER_COMMAND,
        env: containerEnv(env),
        networksAdvanced: [{ name: props.networkName, aliases: [SERVER_NAME] }],
        volumes: [{ hostPath: props.controlKeyFile, containerPath: CONTROL_KEY_PATH, readOnly: true }],
        restart: 'unless-stopped',
        // SIGTERM drains (1001 spread over the window); Docker kills after the stop grace.
        ...stopAttributes('SIGTERM', stopGraceMs(server)),
        healthcheck: httpHealthcheck(healthUrl, 'node', { startPeriod: '5s', retries: 3 }),
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
