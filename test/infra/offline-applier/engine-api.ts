import type Docker from 'dockerode';
import { parseDuration } from '../../../app/src/shared/duration';
import {
  type Block,
  first,
  type HealthcheckBlock,
  type MountedFile,
  replicasOf,
  type Rollout,
  type ServiceConfig,
  type ServiceContainerSpec,
} from './resources';

/** The Engine API's bodies from resource attributes, as the kreuzwerker/docker provider builds them. */

/** A duration attribute ("5s") in nanoseconds, as the Engine API wants it. */
export const ns = (text: string) => parseDuration(text) * 1e6;
/** The same; absent stays absent. */
const nsOrUndefined = (text: string | undefined) => (text ? ns(text) : undefined);

export const labelsOf = (list: readonly { label: string; value: string }[] = []) => Object.fromEntries(list.map((l) => [l.label, l.value]));

/** A healthcheck block (containers and services alike). */
export function healthcheckSpec(block: Block<HealthcheckBlock> | undefined): Docker.HealthConfig | undefined {
  const hc = first(block);
  return (
    hc && {
      Test: [...hc.test],
      Interval: ns(hc.interval),
      Timeout: ns(hc.timeout),
      StartPeriod: ns(hc.start_period),
      Retries: hc.retries,
    }
  );
}

const rollout = (r: Rollout | undefined): Docker.UpdateConfig | undefined =>
  r && {
    Parallelism: r.parallelism ?? 0, // the Engine API's own default when absent: all at once
    Delay: nsOrUndefined(r.delay),
    FailureAction: r.failure_action,
    Monitor: nsOrUndefined(r.monitor),
    MaxFailureRatio: r.max_failure_ratio === undefined ? undefined : Number(r.max_failure_ratio),
    Order: r.order ?? 'stop-first',
  };

/** A config's or secret's file: owner and mode as given (the provider's defaults otherwise: root, 0444). */
const fileOf = (f: MountedFile) => ({ Name: f.file_name, UID: f.file_uid ?? '0', GID: f.file_gid ?? '0', Mode: f.file_mode ?? 0o444 });

function containerSpecOf(c: ServiceContainerSpec): Docker.ContainerSpec {
  return {
    Image: c.image,
    Command: c.command && [...c.command],
    Args: c.args && [...c.args],
    Env: Object.entries(c.env ?? {}).map(([k, v]) => `${k}=${v}`),
    Hostname: c.hostname,
    User: c.user,
    Sysctls: c.sysctl,
    StopSignal: c.stop_signal,
    StopGracePeriod: nsOrUndefined(c.stop_grace_period),
    HealthCheck: healthcheckSpec(c.healthcheck),
    Configs: (c.configs ?? []).map((f) => ({ ConfigID: f.config_id, ConfigName: f.config_name, File: fileOf(f) })),
    Secrets: (c.secrets ?? []).map((f) => ({ SecretID: f.secret_id, SecretName: f.secret_name, File: fileOf(f) })),
    Mounts: (c.mounts ?? []).map((m) => ({
      Type: m.type as 'bind' | 'volume',
      Source: m.source,
      Target: m.target,
      ReadOnly: Boolean(m.read_only),
    })),
    CapabilityAdd: c.cap_add && [...c.cap_add],
  };
}

function taskTemplateOf(c: ServiceConfig): Docker.ContainerTaskSpec {
  const task = first(c.task_spec);
  const restart = first(task?.restart_policy);
  const placement = first(task?.placement);
  return {
    ContainerSpec: containerSpecOf(first(task?.container_spec) ?? { image: '' }),
    Networks: (task?.networks_advanced ?? []).map((n) => ({ Target: n.name, Aliases: n.aliases && [...n.aliases] })),
    RestartPolicy: restart && {
      Condition: restart.condition,
      Delay: nsOrUndefined(restart.delay),
      MaxAttempts: restart.max_attempts,
      Window: nsOrUndefined(restart.window),
    },
    Placement: placement && { Constraints: placement.constraints && [...placement.constraints], MaxReplicas: placement.max_replicas },
  };
}

/** The Engine API's service spec from a docker_service's attributes. */
export function serviceSpec(c: ServiceConfig): Docker.CreateServiceOptions {
  const endpoint = first(c.endpoint_spec);
  return {
    Name: c.name,
    Labels: labelsOf(c.labels),
    TaskTemplate: taskTemplateOf(c),
    Mode: first(c.mode)?.global ? { Global: {} } : { Replicated: { Replicas: replicasOf(c) } },
    EndpointSpec: endpoint && {
      Mode: endpoint.mode,
      Ports: (endpoint.ports ?? []).map((p) => ({
        Protocol: (p.protocol ?? 'tcp') as 'tcp' | 'udp' | 'sctp',
        TargetPort: p.target_port,
        PublishedPort: p.published_port,
        PublishMode: (p.publish_mode ?? 'ingress') as 'ingress' | 'host',
      })),
    },
    UpdateConfig: rollout(first(c.update_config)),
    RollbackConfig: rollout(first(c.rollback_config)),
  };
}
