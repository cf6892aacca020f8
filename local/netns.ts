import { spawnSync } from 'node:child_process';
import { alive } from './leftovers';

/**
 * A small network the local runner makes for itself (the HA pair's proxies and clients each in a
 * namespace of their own, joined by a bridge), with addresses from the benchmarking range
 * 198.18.0.0/15 only, and taken down again: on stop, and, after a crash, on the next start.
 * Names carry the creating process's pid (interface names have 15 characters at most), so a
 * leftover is known to be ours and known to be dead.
 */
export interface NetnsLab {
  readonly bridge: string;
  /** The bridge's own address, on the host side: how namespaces reach processes on the host. */
  readonly hostAddress: string;
  /** Each namespace by its role, with its address on the bridge. */
  readonly namespaces: Record<string, { name: string; address: string }>;
  /** The prefix length of the lab's subnet. */
  readonly prefix: number;
  /** Removes the namespaces, the bridge and the forwarding rule; safe to call twice. */
  teardown(): void;
}

const PREFIX = 'wsl';
/** The lab's subnet: inside 198.18.0.0/15, the range set aside for benchmarking (RFC 2544). */
const SUBNET = { base: '198.18.0.', prefix: 24 };

/**
 * The lab's network as a topology states it (network.subnet, network.ipRange), and the virtual
 * address the local HA pair uses: the roles get .10 and up (inside ipRange), the address sits
 * above the range, where nothing else is handed out.
 */
export const LAB_NETWORK = {
  subnet: `${SUBNET.base}0/${SUBNET.prefix}`,
  ipRange: `${SUBNET.base}0/25`,
  virtualAddress: `${SUBNET.base}200`,
} as const;

export class NetnsError extends Error {}

function run(args: string[], options: { allowFail?: boolean } = {}): string {
  const [command, ...rest] = args;
  const r = spawnSync(command, rest, { encoding: 'utf8' });
  if (r.error || (r.status !== 0 && !options.allowFail)) {
    throw new NetnsError(`${args.join(' ')} failed: ${(r.error?.message ?? r.stderr ?? '').trim()}`);
  }
  return r.stdout ?? '';
}

/** What the lab needs: root, and the ip tool. Undefined when fine, else why not. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root: run as root (sudo)';
  if (spawnSync('ip', ['-V']).error) return 'the ip tool is missing (apt-get install iproute2)';
  return undefined;
}

const bridgeName = (pid: number) => `${PREFIX}br${pid}`;
const vethName = (pid: number, i: number) => `${PREFIX}${pid}v${i}`;
const nsName = (pid: number, role: string) => `${PREFIX}-${pid}-${role}`;

/** Makes the bridge and one namespace per role, .1 for the host side, .10, .11, ... for the roles. */
export function createLab(roles: string[], pid = process.pid): NetnsLab {
  const why = netnsUnavailable();
  if (why) throw new NetnsError(why);
  if (roles.length > 100) throw new NetnsError('at most 100 namespaces');
  const bridge = bridgeName(pid);
  const hostAddress = `${SUBNET.base}1`;
  const namespaces: NetnsLab['namespaces'] = {};
  const forward = ['FORWARD', '-i', bridge, '-o', bridge, '-j', 'ACCEPT'];
  let forwarding = false;
  const teardown = () => {
    for (const { name } of Object.values(namespaces)) run(['ip', 'netns', 'del', name], { allowFail: true });
    run(['ip', 'link', 'del', bridge], { allowFail: true });
    // Docker's FORWARD policy is DROP: frames between bridge ports need this while the lab lives.
    if (forwarding) run(['iptables', '-D', ...forward], { allowFail: true });
    forwarding = false;
  };
  try {
    run(['ip', 'link', 'add', bridge, 'type', 'bridge']);
    run(['ip', 'addr', 'add', `${hostAddress}/${SUBNET.prefix}`, 'dev', bridge]);
    run(['ip', 'link', 'set', bridge, 'up']);
    if (!spawnSync('iptables', ['-V']).error) {
      run(['iptables', '-I', ...forward]);
      forwarding = true;
    }
    roles.forEach((role, i) => {
      const name = nsName(pid, role);
      const address = `${SUBNET.base}${10 + i}`;
      namespaces[role] = { name, address };
      const veth = vethName(pid, i);
      run(['ip', 'netns', 'add', name]);
      run(['ip', 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
      run(['ip', 'link', 'set', veth, 'master', bridge, 'up']);
      run(['ip', '-n', name, 'addr', 'add', `${address}/${SUBNET.prefix}`, 'dev', 'eth0']);
      run(['ip', '-n', name, 'link', 'set', 'eth0', 'up']);
      run(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    });
  } catch (error) {
    teardown();
    throw error;
  }
  return { bridge, hostAddress, namespaces, prefix: SUBNET.prefix, teardown };
}

/** Removes what labs of dead processes left (namespaces, bridges, forwarding rules). Returns what it removed. */
export function reapDeadLabs(): string[] {
  if (netnsUnavailable()) return [];
  const removed: string[] = [];
  for (const line of run(['ip', 'netns', 'list'], { allowFail: true }).split('\n')) {
    const m = new RegExp(`^(${PREFIX}-(\\d+)-\\S+)`).exec(line.trim());
    if (m && !alive(Number(m[2]))) {
      run(['ip', 'netns', 'del', m[1]], { allowFail: true });
      removed.push(m[1]);
    }
  }
  for (const line of run(['ip', '-o', 'link', 'show', 'type', 'bridge'], { allowFail: true }).split('\n')) {
    const m = new RegExp(`^\\d+: (${PREFIX}br(\\d+))[:@]`).exec(line.trim());
    if (m && !alive(Number(m[2]))) {
      run(['ip', 'link', 'del', m[1]], { allowFail: true });
      while (spawnSync('iptables', ['-D', 'FORWARD', '-i', m[1], '-o', m[1], '-j', 'ACCEPT']).status === 0);
      removed.push(m[1]);
    }
  }
  return removed;
}

/** The argv that runs a command inside a lab namespace (nsenter keeps /sys, which `ip netns exec` remounts). */
export function inNamespace(namespace: string, argv: string[], options: { hostname?: string } = {}): string[] {
  if (!options.hostname) return ['nsenter', `--net=/run/netns/${namespace}`, '--', ...argv];
  // A host name of its own too (a UTS namespace), as a container has; the program then replaces the shell.
  const quoted = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return inNamespace(namespace, ['unshare', '--uts', '--', 'sh', '-c', `hostname '${options.hostname}' && exec ${quoted}`]);
}
