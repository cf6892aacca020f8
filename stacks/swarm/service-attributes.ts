import type { ITerraformDependable } from 'cdktf';
import type { Topology } from '../../app/src/topology';
import { shellLine } from '../../components/shell';
import type { ComponentSpec } from '../../components/spec';
import { specHealthcheck } from '../container-attributes';

/** Attributes the swarm target's services share, in the provider's shapes. */

/** What every swarm service construct takes. */
export interface SwarmServiceProps {
  /** The validated topology, with `target: 'swarm'`. */
  readonly topology: Topology;
  /** The stack's overlay network. */
  readonly networkName: string;
  readonly labels: Record<string, string>;
  /**
   * Running before this service starts.
   * @default nothing
   */
  readonly after?: ITerraformDependable[];
}

/** A duration as Swarm takes it ("15s"), rounded up to whole seconds. */
export const seconds = (ms: number): string => `${Math.ceil(ms / 1000)}s`;

/**
 * How a service rolls out a new version (an image, settings or config): one task at a time,
 * the old one stopped before its replacement starts, so no two versions of one slot run at once
 * and a node's published port is free for the new task; `monitor` covers a health check's first
 * verdict, and a version whose tasks never turn healthy is rolled back instead of replacing the
 * whole service. The provider waits for convergence (and so does the offline applier).
 */
export const SERVICE_ROLLOUT = {
  updateConfig: { parallelism: 1, order: 'stop-first', failureAction: 'rollback', monitor: '20s', delay: '0s' },
  rollbackConfig: { parallelism: 1, order: 'stop-first' },
  convergeConfig: { delay: '1s', timeout: '3m' },
} as const;

/** A port a service publishes: the task's, and the node's. */
export interface PublishedPort {
  readonly target: number;
  readonly published: number;
}

/**
 * Every service's endpoint: DNS round robin (`tasks.<service>` and the service name resolve to
 * one address per task) and its ports published on the node that runs the task (host mode). No
 * virtual IP and no ingress mesh: both need IPVS, which this machine's kernel lacks (measured),
 * and IPVS's idle timeout would cut quiet WebSockets (app/src/topology/swarm.ts).
 */
export function dnsrrEndpoint(...ports: PublishedPort[]) {
  return {
    mode: 'dnsrr',
    ...(ports.length
      ? { ports: ports.map((p) => ({ targetPort: p.target, publishedPort: p.published, publishMode: 'host', protocol: 'tcp' })) }
      : {}),
  };
}

/** Pins a task to a manager: where `docker` runs, published ports and bind-mounted reports are found. */
export const ON_A_MANAGER = { constraints: ['node.role == manager'] };

/** What taskContainerOf gives a service's `containerSpec`: `command`, or `args` after the image's entrypoint. */
export interface TaskContainer {
  readonly command?: string[];
  readonly args?: string[];
  readonly env?: Record<string, string>;
  readonly stopSignal?: string;
  readonly stopGracePeriod?: string;
  readonly healthcheck?: ReturnType<typeof specHealthcheck>;
  readonly capAdd?: string[];
  readonly sysctl?: Record<string, string>;
}

/**
 * A component spec as a service's `containerSpec` attributes: the command, environment, stop and
 * health check, capabilities and sysctls (a service has no open-file limit of its own: the
 * daemon's default holds). With `shell`, the command runs through `sh -c` (after the given
 * prelude) so "$VAR" words Swarm templated into the environment are expanded.
 */
export function taskContainerOf(spec: ComponentSpec, o: { shell?: boolean; prelude?: string } = {}): TaskContainer {
  const command = o.shell ? ['sh', '-c', `${o.prelude ?? ''}exec ${shellLine(spec.argv)}`] : [...spec.argv];
  return {
    // The image's entrypoint stays; what follows it are the arguments.
    ...(spec.imageEntrypoint && !o.shell ? { args: spec.argv.slice(1) } : { command }),
    ...(spec.env && Object.keys(spec.env).length ? { env: { ...spec.env } } : {}),
    ...(spec.stop ? { stopSignal: spec.stop.signal, stopGracePeriod: seconds(spec.stop.graceMs) } : {}),
    ...(spec.health ? { healthcheck: specHealthcheck(spec.health) } : {}),
    ...(spec.capabilities?.length ? { capAdd: [...spec.capabilities] } : {}),
    ...(spec.sysctls ? { sysctl: { ...spec.sysctls } } : {}),
  };
}
