import {
  BROKER_CREDENTIALS_ENV,
  CONTROL_KEY_ENV,
  stopGraceMs,
  toAuthEnv,
  toBrokerEnv,
  toServerEnv,
  type Topology,
} from '../app/src/topology';
import type { ComponentSpec } from './spec';

/**
 * How a server starts: `built`, the compiled server (relative to the directory holding dist/: the
 * app image's, or the local runner's build, local/build.ts); `source`, the TypeScript through tsx
 * (relative to the repository's root), what the local runner ran before and the bench compares.
 */
export const SERVER_ARGV = {
  built: ['node', 'dist/server/main.js'],
  source: ['node', '--import', 'tsx', 'app/src/server/main.ts'],
} as const;

export interface ServerLaunch {
  /** Its replica id: `ws-server-<i>`, or on swarm a template Swarm fills in per task. */
  readonly replicaId: string;
  /** Where it reads the control key (tls.controlKey). */
  readonly controlKeyFile: string;
  /**
   * What it runs.
   * @default 'built'
   */
  readonly from?: keyof typeof SERVER_ARGV;
  /**
   * Its port.
   * @default server.port
   */
  readonly port?: number;
  /**
   * The only address it listens on.
   * @default every address
   */
  readonly host?: string;
  /**
   * The broker's URLs, where they are not the topology's (a local nats-server on a free port).
   * @default broker.urls
   */
  readonly brokerUrls?: string[];
  /**
   * The broker user it connects as, and where it reads the password (components/broker-auth.ts).
   * @default none: it connects without credentials
   */
  readonly brokerCredentials?: { readonly user: string; readonly passwordFile: string };
  /**
   * Where the replica reads the publish API's key, where that is not server.apiKeyFile (a mount in a container).
   * @default server.apiKeyFile
   */
  readonly apiKeyFile?: string;
}

/**
 * A replica of the WebSocket server: its settings travel as environment variables (SERVER_ENV,
 * and the broker's when there is one). SIGTERM drains it (1001 spread over the window) within
 * the stop grace; /healthz answers once it listens.
 */
export function serverSpec(topology: Topology, o: ServerLaunch): ComponentSpec {
  const port = o.port ?? topology.server.port;
  const broker = o.brokerUrls ? { ...topology.broker, urls: o.brokerUrls } : topology.broker;
  return {
    argv: SERVER_ARGV[o.from ?? 'built'],
    env: {
      ...toServerEnv({ ...topology.server, port, apiKeyFile: o.apiKeyFile ?? topology.server.apiKeyFile }, o.replicaId, { host: o.host }),
      ...toBrokerEnv({ ...topology, broker }),
      ...toAuthEnv(topology.auth),
      [CONTROL_KEY_ENV]: o.controlKeyFile,
      ...(o.brokerCredentials
        ? {
            [BROKER_CREDENTIALS_ENV.user]: o.brokerCredentials.user,
            [BROKER_CREDENTIALS_ENV.passwordFile]: o.brokerCredentials.passwordFile,
          }
        : {}),
    },
    ports: { http: port },
    health: { url: `http://127.0.0.1:${port}/healthz`, probe: 'node', startPeriodMs: 5_000, retries: 3 },
    stop: { signal: 'SIGTERM', graceMs: stopGraceMs(topology.server) },
  };
}
