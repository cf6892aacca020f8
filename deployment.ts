import { defineTopology, type Topology, type TopologyInput } from './app/src/topology';

/**
 * The deployment, in code: what `npm run deploy` (main.ts, through cdktf) deploys. Change
 * `replicas` here (or set REPLICAS=5 for a quick experiment) and deploy again: the fleet and
 * the proxy's upstreams follow, the proxy reloads gracefully. `target: 'swarm'` deploys the same
 * topology as Docker Swarm services through a manager (DOCKER_HOST): docs/architecture.md.
 */
export const DEPLOYMENT: Partial<TopologyInput> = {
  replicas: 3,
  proxy: { balancing: { strategy: 'least_conn' } } as TopologyInput['proxy'],
};

/** The deployment's validated topology, with the environment's overrides (REPLICAS, BASE_IMAGES). */
export function deploymentTopology(env: Record<string, string | undefined> = process.env): Topology {
  return defineTopology(DEPLOYMENT, env);
}
