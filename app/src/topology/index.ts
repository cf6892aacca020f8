import { ConfigError } from '../shared/errors';
import { topologySchema, type Topology, type TopologyInput } from './schema';

export * from './schema';
export * from './swarm';
export * from './auth';

const DEFAULT_REPLICAS = 3;

/**
 * The servers' name: the swarm's service, the engine's network alias for every replica, the
 * Prometheus job; replica i is `${SERVER_NAME}-${i}`.
 */
export const SERVER_NAME = 'ws-server';

/**
 * The name of replica i: its container name and host name in the stack, its id locally, its
 * `replica` label in metrics. Stable per index, so scaling down removes only the highest.
 */
export const replicaName = (i: number): string => `${SERVER_NAME}-${i}`;

/** Built by scripts/offline-images.sh, which reads these names (scripts/offline-image-names.ts). */
export const OFFLINE_BASE_IMAGES = {
  /** The Debian root filesystem the others are layered on. */
  debian: 'ws-notifications/debian-base:bookworm',
  node: 'ws-notifications/node-base:20',
  nginx: 'ws-notifications/nginx-base:1.22',
  nginxVersion: '1.22',
  prometheus: 'ws-notifications/prometheus-base:2.42',
  nginxExporter: 'ws-notifications/nginx-exporter-base:0.11',
  nats: 'ws-notifications/nats-base:2.9',
} as const;

/**
 * Validates a topology written in code and applies the environment overrides meant for quick
 * experiments (REPLICAS=5). Throws a ConfigError naming each bad field and its rule; nothing is
 * synthesized or deployed from an invalid topology.
 */
export function defineTopology(input: Partial<TopologyInput> = {}, env: Record<string, string | undefined> = {}): Topology {
  const merged: Record<string, unknown> = { replicas: DEFAULT_REPLICAS, ...input };
  const replicas = env.REPLICAS;
  if (replicas !== undefined && replicas !== '') {
    if (!/^\s*-?\d+\s*$/.test(replicas)) {
      throw new ConfigError('topology', [{ field: 'replicas', rule: `REPLICAS="${replicas}" is not a whole number (use 1 to 64)` }]);
    }
    merged.replicas = Number(replicas);
  }
  // BASE_IMAGES=offline: the locally built base images (scripts/offline-images.sh) instead of the
  // public ones, for machines without an image registry; their nginx is Debian's 1.22, their
  // Prometheus and exporter Debian's packages. Grafana has no offline image, so it is left out.
  const baseImages = env.BASE_IMAGES;
  if (baseImages !== undefined && baseImages !== '' && baseImages !== 'public') {
    if (baseImages !== 'offline') {
      throw new ConfigError('topology', [{ field: 'images', rule: `BASE_IMAGES="${baseImages}" must be "offline" or "public"` }]);
    }
    const images = (merged.images ?? {}) as Record<string, unknown>;
    const proxy = (merged.proxy ?? {}) as Record<string, unknown>;
    const monitoring = (merged.monitoring ?? {}) as Record<string, unknown>;
    merged.images = {
      ...images,
      nodeBase: OFFLINE_BASE_IMAGES.node,
      nginxBase: OFFLINE_BASE_IMAGES.nginx,
      prometheus: OFFLINE_BASE_IMAGES.prometheus,
      nginxExporter: OFFLINE_BASE_IMAGES.nginxExporter,
      nats: OFFLINE_BASE_IMAGES.nats,
    };
    merged.proxy = { ...proxy, nginxVersion: OFFLINE_BASE_IMAGES.nginxVersion };
    merged.monitoring = { ...monitoring, grafana: false };
  }
  const result = topologySchema.safeParse(merged);
  if (!result.success) throw ConfigError.fromZod('topology', result.error);
  return result.data;
}
/**
 * The input with auth off and clients publishing over the WebSocket: a trusted loopback, as
 * `npm run local` without --auth, the benches and the tests of other features run it. Anyone who
 * reaches such a proxy may subscribe to and publish on any topic.
 */
export function withoutAuth(input: Partial<TopologyInput> = {}): Partial<TopologyInput> {
  return { ...input, auth: { mode: 'none' } as TopologyInput['auth'], server: { ...input.server, clientPublish: true } };
}

export * from './server-env';
export * from './ha';
