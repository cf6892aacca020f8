import { Construct } from 'constructs';
import { Service } from '@cdktf/provider-docker/lib/service';
import { stopGraceMs, toBrokerEnv, toServerEnv, type Topology } from '../../app/src/topology';
import { containerLabels, httpHealthcheck } from '../container-attributes';
import { SERVER_COMMAND, serverHealthUrl } from '../server-fleet';

/** The servers' service on the swarm target; its tasks are `ws-server.<slot>.<id>`. */
export const SERVER_SERVICE = 'ws-server';

export interface ServerServiceProps {
  readonly topology: Topology;
  /** The app image, by name: every node must have it (a registry, or loaded into each). */
  readonly image: string;
  /** An overlay network. */
  readonly networkName: string;
  readonly labels: Record<string, string>;
}

const seconds = (ms: number) => `${Math.ceil(ms / 1000)}s`;

/**
 * The servers as one Docker Swarm service (`target: 'swarm'`), its replica count the topology's:
 * changing it in code updates the service in place. Each task's replica id comes from its slot
 * (`ws-server-<slot>`, a Go template Swarm fills in), so metrics and hellos name replicas as on
 * the engine target.
 *
 * Rolling updates (a new image or settings), chosen for WebSockets:
 * - `order: stop-first`, parallelism 1: a task drains (1001 to its clients, who reconnect to the
 *   others) within its stop grace before its replacement starts, so capacity dips by one task at
 *   a time and no two versions of one slot run at once;
 * - `monitor` = the health check's first verdict window, `failure_action: rollback`: a version
 *   whose tasks do not become healthy is rolled back instead of replacing the whole fleet;
 * - the health check gates it: a task counts as running once /healthz answers.
 */
export class ServerService extends Construct {
  readonly service: Service;

  constructor(scope: Construct, id: string, props: ServerServiceProps) {
    super(scope, id);
    const { topology } = props;
    const { server } = topology;
    const grace = stopGraceMs(server);
    const env = { ...toServerEnv(server, `${SERVER_SERVICE}-{{.Task.Slot}}`), ...toBrokerEnv(topology.broker) };
    // The engine target's check, as the service's: a rollout waits for it.
    const healthcheck = httpHealthcheck(serverHealthUrl(server), 'node', { startPeriod: '5s', retries: 3 });
    this.service = new Service(this, 'service', {
      name: SERVER_SERVICE,
      labels: containerLabels(props.labels),
      taskSpec: {
        containerSpec: {
          image: props.image,
          command: SERVER_COMMAND,
          env,
          stopSignal: 'SIGTERM',
          stopGracePeriod: seconds(grace),
          healthcheck,
        },
        networksAdvanced: [{ name: props.networkName }],
        restartPolicy: { condition: 'any', delay: '1s' },
      },
      mode: { replicated: { replicas: topology.replicas } },
      // Long enough for the health check's first verdict (start period, then its retries).
      updateConfig: { parallelism: 1, order: 'stop-first', failureAction: 'rollback', monitor: '20s', delay: '0s' },
      rollbackConfig: { parallelism: 1, order: 'stop-first' },
      // The provider waits until the service runs its replicas (and so does the offline applier).
      convergeConfig: { delay: '1s', timeout: '3m' },
    });
  }
}
