import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { alive } from '../../local/leftovers';
import { createLab, inNamespace, reapDeadLabs, type NetnsLab } from '../../local/netns';
import { start, stop, type Owned } from '../../local/processes';

/**
 * A multi-node Docker Swarm on this one machine, for the swarm target's tests: one dockerd per
 * network namespace of a lab (local/netns.ts, addresses from 198.18.0.0/15), each with its own
 * data root, exec root, pid file and socket. The first node inits the swarm, the others join as
 * workers, and images are copied into each (`docker save | docker -H … load`: nothing can be
 * pulled here). dockerd is started with `nsenter --net=…`: `ip netns exec` remounts /sys, and
 * dockerd then fails ("Devices cgroup isn't mounted"). Everything is removed by teardown(), and a
 * dead run's leftovers by the next createSwarmLab().
 */
export interface SwarmNode {
  readonly name: string;
  readonly address: string;
  /** The daemon's socket, for `docker -H`. */
  readonly host: string;
  readonly dockerd: Owned;
}

export interface SwarmLab {
  readonly lab: NetnsLab;
  /** The manager first, then the workers. */
  readonly nodes: SwarmNode[];
  /** Runs the docker CLI against a node; throws with its stderr when it fails. */
  docker(node: SwarmNode, args: string[]): string;
  /**
   * Kills a node outright, as a power cut would: SIGKILL to its dockerd, its containerd, the
   * container shims and every container process, at once. Returns how many processes died.
   */
  killNode(node: SwarmNode): number;
  teardown(): Promise<void>;
}

/** Where the daemons keep their state: per creating pid, so a dead run's are known. */
const ROOT = { data: '/var/lib/ws-swarm-lab', exec: '/run/ws-swarm-lab' };

function cli(host: string, args: string[], input?: Buffer): string {
  const r = spawnSync('docker', ['-H', host, ...args], { encoding: 'utf8', input, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`docker -H ${host} ${args.join(' ')}: ${(r.stderr || r.stdout || r.error?.message || '').trim()}`);
  return r.stdout;
}

/**
 * Removes what swarm labs of dead processes left: their processes (daemons, container shims and
 * containers, found by the lab's paths on their command lines, whether or not the directories
 * are still there), namespaces, bridge and directories.
 */
export function reapDeadSwarmLabs(): string[] {
  const dead = (root: string) => (existsSync(root) ? readdirSync(root).filter((pid) => /^\d+$/.test(pid) && !alive(Number(pid))) : []);
  // The processes first: they outlive their creator, and hold the namespaces and mounts.
  const labOf = new RegExp(`${ROOT.exec}/(\\d+)/`);
  const killed = killProcesses(
    (cmdline) => {
      const creator = labOf.exec(cmdline)?.[1];
      return creator !== undefined && !alive(Number(creator));
    },
    { wait: true },
  );
  const removed = reapDeadLabs();
  if (killed) removed.push(`${killed} process(es)`);
  for (const root of [ROOT.data, ROOT.exec]) {
    for (const pid of dead(root)) {
      removeTree(join(root, pid));
      removed.push(join(root, pid));
    }
  }
  return removed;
}

/** A daemon's directory, after the overlay and namespace mounts it may have left under it. */
function removeTree(dir: string): void {
  spawnSync('sh', ['-c', `grep -o ' ${dir}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l`]);
  rmSync(dir, { recursive: true, force: true });
}

async function waitForDaemon(node: { name: string; host: string; dockerd: Owned }, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (node.dockerd.child.exitCode !== null)
      throw new Error(
        `${node.name}: dockerd exited (${node.dockerd.child.exitCode}):\n${node.dockerd.output().trim().split('\n').slice(-10).join('\n')}`,
      );
    if (spawnSync('docker', ['-H', node.host, 'info', '--format', '{{.ID}}']).status === 0) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${node.name}: dockerd did not answer on ${node.host} within ${timeoutMs} ms`);
}

/** Starts `count` daemons, makes them one swarm (the first the manager), and loads `images` into each. */
export async function createSwarmLab(options: { count?: number; images?: string[]; log?: (line: string) => void } = {}): Promise<SwarmLab> {
  const count = options.count ?? 3;
  const log = options.log ?? (() => {});
  if (count < 1 || count > 8) throw new Error('createSwarmLab: 1 to 8 nodes');
  const reaped = reapDeadSwarmLabs();
  if (reaped.length) log(`removed what dead swarm labs left: ${reaped.join(', ')}`);
  const names = Array.from({ length: count }, (_, i) => `swarm-${i}`);
  const lab = createLab(names);
  const nodes: SwarmNode[] = [];
  const teardown = async () => {
    await Promise.all(nodes.map((n) => stop(n.dockerd, 'SIGTERM', 20_000)));
    // A stopped dockerd leaves its shims and their containers running: they go too.
    killProcesses((cmdline) => cmdline.includes(`${join(ROOT.exec, String(process.pid))}/`), { wait: true });
    for (const root of [ROOT.data, ROOT.exec]) removeTree(join(root, String(process.pid)));
    lab.teardown();
  };
  try {
    for (const name of names) {
      const { name: namespace, address } = lab.namespaces[name];
      const [data, exec] = [join(ROOT.data, String(process.pid), name), join(ROOT.exec, String(process.pid), name)];
      mkdirSync(data, { recursive: true });
      mkdirSync(exec, { recursive: true });
      const host = `unix://${exec}/docker.sock`;
      // Its own host name too (a UTS namespace): the swarm names nodes by it, and placement can use it.
      const [command, ...args] = inNamespace(
        namespace,
        ['dockerd', '--data-root', data, '--exec-root', exec, '--pidfile', join(exec, 'docker.pid'), '-H', host],
        { hostname: name },
      );
      const dockerd = start(`dockerd ${name}`, command, args, { logFile: join(exec, 'dockerd.log') });
      const node = { name, address, host, dockerd };
      nodes.push(node);
      await waitForDaemon(node);
    }
    const [manager, ...workers] = nodes;
    cli(manager.host, ['swarm', 'init', '--advertise-addr', manager.address, '--listen-addr', `${manager.address}:2377`]);
    const token = cli(manager.host, ['swarm', 'join-token', '-q', 'worker']).trim();
    for (const w of workers) cli(w.host, ['swarm', 'join', '--token', token, '--advertise-addr', w.address, `${manager.address}:2377`]);
    log(`swarm of ${count}: ${nodes.map((n) => `${n.name} ${n.address}`).join(', ')}`);
    for (const image of options.images ?? []) {
      // The image once from the host's engine, into every node.
      const tar = execFileSync('docker', ['save', image], { maxBuffer: 4 * 1024 * 1024 * 1024 });
      for (const n of nodes) cli(n.host, ['load', '-q'], tar);
      log(`loaded ${image} into ${count} node(s)`);
    }
  } catch (error) {
    await teardown();
    throw error;
  }
  return {
    lab,
    nodes,
    docker: (node, args) => cli(node.host, args),
    killNode: (node) =>
      killProcesses((cmdline) => cmdline.includes(`${join(ROOT.exec, String(process.pid), node.name)}/`), { wait: false }),
    teardown,
  };
}

/**
 * SIGKILL, at once, to every process whose command line `matches` (the daemons name their exec
 * root on it: dockerd's --exec-root, containerd's and each shim's socket under it) and to all
 * their descendants (the containers: a shim is re-parented away from dockerd, so the tree is
 * walked from each match). With `wait`, until they are gone (their mounts can then go); without,
 * it returns at once, as a fault must. Returns how many there were.
 */
function killProcesses(matches: (cmdline: string) => boolean, options: { wait: boolean }): number {
  const table = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map((pid) => {
      try {
        const status = readFileSync(`/proc/${pid}/status`, 'utf8');
        return {
          pid: Number(pid),
          ppid: Number(/^PPid:\s*(\d+)/m.exec(status)?.[1]),
          cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '),
        };
      } catch {
        return undefined; // gone meanwhile
      }
    })
    .filter((p): p is { pid: number; ppid: number; cmdline: string } => p !== undefined && p.pid !== process.pid);
  const doomed = new Set(table.filter((p) => matches(p.cmdline)).map((p) => p.pid));
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of table) {
      if (doomed.has(p.pid) || !doomed.has(p.ppid)) continue;
      doomed.add(p.pid);
      grew = true;
    }
  }
  for (const pid of doomed) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (options.wait) for (let i = 0; i < 50 && [...doomed].some(alive); i++) spawnSync('sleep', ['0.1']);
  return doomed.size;
}
