import { z } from 'zod';
import { parseCidr } from './ha';

/**
 * Where the stack runs (`target`): `engine`, containers on one Docker engine (the default), or
 * `swarm`, services on a Docker Swarm of several machines (docs/architecture.md, "Two targets").
 */
export const TARGETS = ['engine', 'swarm'] as const;
export type Target = (typeof TARGETS)[number];

/**
 * The swarm target's own settings. Every service is reached by its tasks' addresses (endpoint
 * mode dnsrr: `tasks.<service>` and the service name resolve to one address per task), and the
 * proxy publishes its ports in host mode on each node it runs on: no virtual IP and no ingress
 * mesh (IPVS) between a client and its WebSocket, whose idle timeout would cut quiet connections.
 */
export const swarmSchema = z
  .object({
    /**
     * nats-server instances in the broker's cluster, at most one per node (placement), with the
     * stream kept on three of them: losing a node loses no history, and a majority keeps quorum.
     */
    brokerNodes: z
      .number()
      .int()
      .min(3)
      .max(7)
      .refine((n) => n % 2 === 1, 'must be odd: a JetStream cluster needs a majority to agree')
      .default(3),
    /**
     * How often each proxy re-resolves `tasks.<servers>`. When the set of tasks changed it checks
     * and reloads nginx (which resolves the name again) and tells every task its new workers, as
     * a reload on the engine target does.
     */
    followIntervalMs: z.number().int().min(500).max(60_000).default(2_000),
    /** Names or addresses clients use to reach the nodes' published port: on the certificate. */
    publicNames: z.array(z.string().min(1)).default([]),
    /**
     * With proxy.ha: the nodes' own network (a.b.c.d/n), where the keepalived pair's virtual
     * address lives (outside every node's address), and the interface on each node that carries it.
     */
    nodeSubnet: z
      .string()
      .refine((s) => parseCidr(s) !== undefined, 'must be an IPv4 block such as 10.1.0.0/24')
      .optional(),
    vrrpInterface: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,15}$/, 'must be an interface name (at most 15 characters)')
      .default('eth0'),
    /** Where the pair's keepalived may run, in Swarm's constraint syntax (say `node.labels.edge == true`); anywhere by default. */
    vrrpPlacement: z.array(z.string().min(1)).default([]),
  })
  .strict();

export type SwarmConfig = z.infer<typeof swarmSchema>;

/** A swarm service's task addresses, by Swarm's DNS. */
export const tasksOf = (service: string): string => `tasks.${service}`;

/** Copies of the broker's stream a swarm keeps (JetStream replicas): three, or fewer servers. */
export const SWARM_STREAM_REPLICAS = 3;
