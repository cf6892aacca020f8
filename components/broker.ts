import type { ComponentSpec } from './spec';

/**
 * How nats-server is started, on every target: the engine's container, each swarm task (with
 * the cluster) and the local runner's process.
 */
export interface NatsServerLaunch {
  /** JetStream's file store. */
  store: string;
  /** The client port. */
  port: number;
  /** Listen on this address only. @default all addresses */
  address?: string;
  /** The monitoring port (/healthz, /varz, /jsz). @default none */
  monitoringPort?: number;
  /** As the cluster and JetStream name it; may be a "$VAR" for the shell to expand. @default nats-server's own */
  serverName?: string;
  /** Route to the other servers of a cluster. @default a single server */
  cluster?: { name: string; listen: string; routes: string };
  /** A config file with the users (components/broker-auth.ts). @default none: anyone may connect */
  authFile?: string;
}

/** How long nats-server gets to flush its store on stop. */
export const BROKER_STOP_GRACE_MS = 10_000;

export function natsServerArgv(o: NatsServerLaunch): string[] {
  return [
    'nats-server',
    // The users come from a file; the flags below override anything else in it.
    ...(o.authFile ? ['--config', o.authFile] : []),
    '--jetstream',
    '--store_dir',
    o.store,
    ...(o.address ? ['--addr', o.address] : []),
    '--port',
    String(o.port),
    ...(o.monitoringPort ? ['--http_port', String(o.monitoringPort)] : []),
    ...(o.serverName ? ['--server_name', o.serverName] : []),
    ...(o.cluster ? ['--cluster_name', o.cluster.name, '--cluster', o.cluster.listen, '--routes', o.cluster.routes] : []),
  ];
}

/**
 * nats-server as a component. Its health is /healthz on the monitoring port, when it has one.
 * In a cluster only this server's JetStream counts (`js-enabled-only`): Swarm puts a task in DNS
 * only once it is healthy and the servers find each other by DNS, so a check that waited for the
 * cluster would never pass.
 */
export function brokerSpec(o: NatsServerLaunch): ComponentSpec {
  const health = o.monitoringPort
    ? {
        url: `http://127.0.0.1:${o.monitoringPort}/healthz${o.cluster ? '?js-enabled-only=true' : ''}`,
        probe: 'wget' as const,
        startPeriodMs: o.cluster ? 10_000 : 5_000,
        retries: 5,
      }
    : undefined;
  return {
    argv: natsServerArgv(o),
    ports: { client: o.port, ...(o.monitoringPort ? { monitoring: o.monitoringPort } : {}) },
    ...(health ? { health } : {}),
    stop: { signal: 'SIGTERM', graceMs: BROKER_STOP_GRACE_MS },
  };
}
