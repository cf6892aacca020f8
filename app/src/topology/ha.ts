import { z } from 'zod';

/**
 * No single proxy (`proxy.ha`): several nginx proxies sharing one virtual address through
 * keepalived's VRRP. The node holding the address answers clients; when its nginx dies (or its
 * stub_status stops answering) it drops out and the next one takes the address.
 */
export const haCheckSchema = z
  .object({
    /** How often each node checks its own nginx (alive, and stub_status answering): whole seconds, as keepalived's script interval. */
    intervalMs: z
      .number()
      .int()
      .min(1_000)
      .max(60_000)
      .refine((ms) => ms % 1_000 === 0, 'must be whole seconds (keepalived runs check scripts at most once a second)')
      .default(1_000),
    /** Failed checks in a row that demote a node ... */
    fall: z.number().int().min(1).max(10).default(2),
    /** ... and passed checks in a row that bring it back. */
    rise: z.number().int().min(1).max(10).default(2),
  })
  .strict();

export const haSchema = z
  .object({
    enabled: z.boolean().default(false),
    /** Proxies sharing the address (ws-nginx-0, ws-nginx-1, ...). */
    proxies: z.number().int().min(2).max(8).default(2),
    /** The one address clients use: inside network.subnet, outside network.ipRange (where containers get theirs). */
    virtualAddress: z.ipv4().optional(),
    /** VRRP virtual_router_id: unique among the VRRP groups on that network. */
    routerId: z.number().int().min(1).max(255).default(51),
    /** One per proxy, distinct (the highest starts as MASTER); default 150, 100, 50, ... */
    priorities: z.array(z.number().int().min(1).max(254)).optional(),
    /** VRRP advert interval (VRRPv3: centiseconds): a backup takes over after about three missed adverts. */
    advertIntervalMs: z
      .number()
      .int()
      .min(10)
      .max(40_950)
      .refine((ms) => ms % 10 === 0, 'must be whole centiseconds (VRRPv3)')
      .default(1_000),
    /**
     * Off (keepalived `nopreempt`): a node that comes back stays BACKUP instead of taking the
     * address from the node now holding the clients' connections (docs/architecture.md).
     */
    preempt: z.boolean().default(false),
    check: haCheckSchema.default(haCheckSchema.parse({})),
    /**
     * A graceful stop of the node holding the address: its nginx stops listening, the replicas
     * ask its clients to move (1001) within this window, then it gives the address up. Moving
     * the address first would leave those connections half-open on the old node. Shorter than
     * the check's demotion (fall × intervalMs), which starts when nginx stops listening.
     */
    stopDrainMs: z.number().int().min(0).max(60_000).default(1_000),
  })
  .strict();

export type HaConfig = z.infer<typeof haSchema>;

/** Each proxy's VRRP priority: as given, or 150, 100, 50, ... */
export function haPriorities(ha: Pick<HaConfig, 'proxies' | 'priorities'>): number[] {
  return ha.priorities ?? Array.from({ length: ha.proxies }, (_, i) => Math.max(1, 150 - 50 * i));
}

/** The host clients reach the proxy at: the pair's virtual address, or the one proxy's container name. */
export function proxyHost(proxy: { containerName: string; ha: Pick<HaConfig, 'enabled' | 'virtualAddress'> }): string {
  return proxy.ha.enabled && proxy.ha.virtualAddress ? proxy.ha.virtualAddress : proxy.containerName;
}

/** The proxy containers: ws-nginx-0, ws-nginx-1, ... with the pair, else the one. */
export function proxyNames(proxy: { containerName: string; ha: Pick<HaConfig, 'enabled' | 'proxies'> }): string[] {
  return proxy.ha.enabled ? Array.from({ length: proxy.ha.proxies }, (_, i) => haProxyName(proxy.containerName, i)) : [proxy.containerName];
}

/** The proxies' names: one home for them (containers, config, metrics). */
export function haProxyName(containerName: string, index: number): string {
  return `${containerName}-${index}`;
}

/** An IPv4 CIDR block, parsed. */
export interface Cidr {
  readonly base: number;
  readonly prefix: number;
}

export function ipv4ToInt(address: string): number {
  return address.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

export function parseCidr(text: string): Cidr | undefined {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(text);
  if (!m || m[1].split('.').some((o) => Number(o) > 255) || Number(m[2]) > 32) return undefined;
  const prefix = Number(m[2]);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { base: (ipv4ToInt(m[1]) & mask) >>> 0, prefix };
}

export function cidrContains(cidr: Cidr, address: number): boolean {
  const size = 2 ** (32 - cidr.prefix);
  return address >= cidr.base && address < cidr.base + size;
}

/**
 * What is wrong with an HA setup against its network, as [field path, rule] pairs: the address
 * must be in the subnet, not its network or broadcast address, not the gateway (the first host),
 * and not where Docker hands out container addresses (ipRange); priorities one per proxy, distinct.
 * `network` is where the address lives: the service network (`network.subnet` and
 * `network.ipRange`) on the engine target, the nodes' own network (`swarm.nodeSubnet`, no range:
 * nodes have fixed addresses) on the swarm target; `fields` names them in the messages.
 */
export function haProblems(
  ha: HaConfig,
  network: { subnet?: string; ipRange?: string },
  fields: { subnet: string[]; ipRange?: string[] } = { subnet: ['network', 'subnet'], ipRange: ['network', 'ipRange'] },
): [string[], string][] {
  if (!ha.enabled) return [];
  const problems: [string[], string][] = [];
  const priorities = haPriorities(ha);
  if (priorities.length !== ha.proxies) problems.push([['proxy', 'ha', 'priorities'], `needs one priority per proxy (${ha.proxies})`]);
  if (new Set(priorities).size !== priorities.length)
    problems.push([['proxy', 'ha', 'priorities'], `must be distinct (${priorities.join(', ')}): the highest starts as MASTER`]);
  if (!ha.virtualAddress)
    problems.push([['proxy', 'ha', 'virtualAddress'], 'is required with proxy.ha.enabled: the one address clients use']);
  if (ha.stopDrainMs >= ha.check.fall * ha.check.intervalMs)
    problems.push([
      ['proxy', 'ha', 'stopDrainMs'],
      `must be shorter than the check's demotion (fall ${ha.check.fall} × intervalMs ${ha.check.intervalMs}): the address would move before the clients were asked to`,
    ]);
  const subnet = network.subnet ? parseCidr(network.subnet) : undefined;
  const subnetName = fields.subnet.join('.');
  if (!subnet) {
    problems.push([fields.subnet, 'is required with proxy.ha.enabled (the virtual address must sit in a known subnet), as a.b.c.d/n']);
    return problems;
  }
  const range = network.ipRange ? parseCidr(network.ipRange) : undefined;
  if (!ha.virtualAddress) return problems;
  const vip = ipv4ToInt(ha.virtualAddress);
  const broadcast = subnet.base + 2 ** (32 - subnet.prefix) - 1;
  if (!cidrContains(subnet, vip))
    problems.push([['proxy', 'ha', 'virtualAddress'], `${ha.virtualAddress} is outside ${subnetName} ${network.subnet}`]);
  else if (vip === subnet.base || vip === broadcast)
    problems.push([['proxy', 'ha', 'virtualAddress'], `${ha.virtualAddress} is the subnet's network or broadcast address`]);
  else if (vip === subnet.base + 1)
    problems.push([['proxy', 'ha', 'virtualAddress'], `${ha.virtualAddress} is the network's gateway (its first address)`]);
  if (!fields.ipRange) return problems;
  if (!range)
    problems.push([
      fields.ipRange,
      'is required with proxy.ha.enabled: containers get addresses there, and the virtual address must stay outside it',
    ]);
  else if (cidrContains(range, vip))
    problems.push([
      ['proxy', 'ha', 'virtualAddress'],
      `${ha.virtualAddress} is inside ${fields.ipRange.join('.')} ${network.ipRange}, where containers get their addresses`,
    ]);
  return problems;
}
