import { ConfigError } from '../shared/errors';
import { topologySchema, type Topology, type TopologyInput } from './schema';

export * from './schema';

export const DEFAULT_REPLICAS = 3;

/**
 * Validates a topology written in code and applies the environment overrides meant for quick
 * experiments (REPLICAS=5). Throws a ConfigError naming each bad field and its rule; nothing is
 * synthesized or deployed from an invalid topology.
 */
export function defineTopology(
  input: Partial<TopologyInput> = {},
  env: Record<string, string | undefined> = {},
): Topology {
  const merged: Record<string, unknown> = { replicas: DEFAULT_REPLICAS, ...input };
  const replicas = env.REPLICAS;
  if (replicas !== undefined && replicas !== '') {
    if (!/^\s*-?\d+\s*$/.test(replicas)) {
      throw new ConfigError('topology', [
        { field: 'replicas', rule: `REPLICAS="${replicas}" is not a whole number (use 1 to 64)` },
      ]);
    }
    merged.replicas = Number(replicas);
  }
  const result = topologySchema.safeParse(merged);
  if (!result.success) throw ConfigError.fromZod('topology', result.error);
  return result.data;
}
export * from './server-env';
