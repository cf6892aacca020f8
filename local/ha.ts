import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { proxyNames, type Topology } from '../app/src/topology';
import { PROXY_PORTS, renderNginxConf } from '../nginx/render';
import { localProxy, type ProxyAccess } from '../control/access';
import { startFollower, stopFollower } from './follower';
import { inNamespace, type NetnsLab } from './netns';
import { running, startComponent, stopComponent, waitForPort, type Owned, type start } from './processes';
import { proxySpec } from '../components/proxy';
import type { ComponentSpec } from '../components/spec';
import { vrrpSpec } from '../components/vrrp';
import { builtPage } from '../web/build';

/**
 * The HA pair on this machine (`npm run local -- --ha`): each proxy is nginx plus keepalived in a
 * network namespace of its own on the lab's bridge, like a container each; the virtual address
 * moves between them by VRRP. The replicas stay on the host and are reached at the bridge's
 * host address. Inside its namespace each proxy has the whole port space: 443 and 80, as in the stack.
 */
export interface LocalHaProxy {
  readonly index: number;
  /** ws-nginx-0, ws-nginx-1, ... (also its host name, stamped into the proxy-worker header). */
  readonly name: string;
  readonly namespace: string;
  /** Its own address on the bridge. */
  readonly address: string;
  readonly dir: string;
  readonly configFile: string;
  nginx: Owned;
  keepalived: Owned;
  /** How its nginx and keepalived run and stop (components/). */
  readonly specs: { readonly nginx: ComponentSpec; readonly vrrp: ComponentSpec };
  /** Announces this nginx's reloads to the replicas (local/follower.ts). */
  readonly follower: Owned;
  /** keepalived's last state for this node (MASTER, BACKUP, FAULT), from its notify script. */
  state(): string | undefined;
  /** Runs commands where this nginx runs (its network and host-name namespaces), for reloads. */
  access(): ProxyAccess;
  alive(): boolean;
}

export interface LocalHaPair {
  readonly virtualAddress: string;
  readonly proxies: LocalHaProxy[];
  /** The proxy whose namespace holds the virtual address now, if any. */
  holder(): LocalHaProxy | undefined;
  /** Stops the pair: keepalived first (it gives the address up), then nginx. */
  stop(): Promise<void>;
}

/**
 * Load client processes for a run through the pair: a failover reconnects every client within a
 * few seconds, so one process per 1,000 connections (up to the cores) keeps that storm's
 * handshakes from making the client, not the pair, the bottleneck. Measured here: 2,000
 * connections in one process lagged in 6–8 of about 60 seconds (INCONCLUSIVE); in two, in none
 * in most runs (docs/architecture.md, "The client's share of the CPU").
 */
export function haClientWorkers(connections: number, cores = availableParallelism()): number {
  return Math.max(1, Math.min(cores, Math.ceil(connections / 1_000)));
}

type Own = (...args: Parameters<typeof start>) => Owned;

/** Whether a namespace's interface carries the address now. */
function holds(namespace: string, address: string): boolean {
  const r = spawnSync('ip', ['-n', namespace, '-o', '-4', 'addr', 'show'], { encoding: 'utf8' });
  return new RegExp(`inet ${address.replace(/\./g, '\\.')}/`).test(r.stdout ?? '');
}

/** The argv prefix that runs a command in a proxy's network and host-name namespaces (its nginx's). */
const enterProxy = (nginx: Owned) => ['nsenter', '-t', String(nginx.child.pid), '--net', '--uts', '--'];

/** What a pair's proxies are started with: the replicas to balance, the run's files and processes. */
interface HaPairOptions {
  upstreams: string[];
  certFile: string;
  keyFile: string;
  ticketKeyFile: string;
  controlKeyFile: string;
  runtimeDir: string;
  own: Own;
  /** @default 15_000 */
  timeoutMs?: number;
}

/** Starts nginx and keepalived in each proxy namespace and waits until one holds the virtual address. */
export async function startHaPair(topology: Topology, lab: NetnsLab, options: HaPairOptions): Promise<LocalHaPair> {
  const { ha } = topology.proxy;
  if (!ha.enabled || !ha.virtualAddress) throw new Error('startHaPair: proxy.ha is not enabled');
  const virtualAddress = ha.virtualAddress;
  const proxies: LocalHaProxy[] = [];
  for (const [index, name] of proxyNames(topology.proxy).entries()) {
    const ns = lab.namespaces[name];
    if (!ns) throw new Error(`startHaPair: the lab has no namespace for ${name}`);
    proxies.push(await startHaProxy(topology, { index, name, namespace: ns.name, address: ns.address }, options));
  }
  const holder = () => proxies.find((p) => holds(p.namespace, virtualAddress));
  await waitForHolder(proxies, virtualAddress, holder, options.timeoutMs ?? 15_000);
  return {
    virtualAddress,
    proxies,
    holder,
    async stop() {
      await Promise.all(proxies.map((p) => stopComponent(p.keepalived, p.specs.vrrp)));
      await Promise.all(proxies.map((p) => stopFollower(p.follower)));
      await Promise.all(proxies.map((p) => stopComponent(p.nginx, p.specs.nginx)));
    },
  };
}

/** One proxy of the pair's nginx config, written into its directory. */
function writeHaNginxConf(topology: Topology, dir: string, options: HaPairOptions): string {
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const configFile = join(dir, 'nginx.conf');
  const nginxConf = renderNginxConf(topology, {
    upstreams: options.upstreams,
    certFile: options.certFile,
    keyFile: options.keyFile,
    sessionTicketKeyFile: options.ticketKeyFile,
    listenAddress: '0.0.0.0',
    httpsPort: PROXY_PORTS.https,
    httpPort: PROXY_PORTS.http,
    runtimeDir: dir,
    pageDir: builtPage(),
  });
  writeFileSync(configFile, nginxConf);
  return configFile;
}

/** keepalived beside one proxy, in its network namespace, its bundle in the proxy's directory. */
function startKeepalived(
  topology: Topology,
  place: { index: number; name: string; namespace: string; dir: string },
  options: HaPairOptions,
) {
  const { index, name, namespace, dir } = place;
  const vrrp = vrrpSpec(topology, {
    index,
    proxy: name,
    interface: 'eth0',
    configDir: dir,
    stateDir: dir,
    pidDir: dir,
    statusPort: PROXY_PORTS.http,
  });
  const keepalived = startComponent(`keepalived-${index}`, vrrp, {
    prefix: inNamespace(namespace, []),
    cwd: dir,
    logFile: join(dir, 'logs', 'keepalived.log'),
    startProcess: options.own,
  });
  return { vrrp, keepalived };
}

/** One proxy of the pair in its namespace: nginx (listening), keepalived, and the follower that announces reloads. */
async function startHaProxy(
  topology: Topology,
  place: { index: number; name: string; namespace: string; address: string },
  options: HaPairOptions,
): Promise<LocalHaProxy> {
  const { index, name, namespace, address } = place;
  const dir = join(options.runtimeDir, name);
  const configFile = writeHaNginxConf(topology, dir, options);
  // Its own host name (a UTS namespace), as a container has: replicas tell proxies apart by it.
  const pidFile = join(dir, 'nginx.pid');
  const nginxSpec = proxySpec(topology, { config: configFile, pidFile, prefix: dir });
  const inItsNamespaces = { ...nginxSpec, argv: inNamespace(namespace, [...nginxSpec.argv], { hostname: name }) };
  const nginx = startComponent(name, inItsNamespaces, { cwd: dir, logFile: join(dir, 'logs', 'nginx.log'), startProcess: options.own });
  const { vrrp, keepalived } = startKeepalived(topology, { index, name, namespace, dir }, options);
  const stateFile = join(dir, 'state');
  await waitForPort(PROXY_PORTS.https, nginx, 20_000, address);
  // In nginx's own network and host-name namespaces (entered once nginx listens, so they are
  // its final ones): the announcement names the proxy by its host name.
  const enter = (argv: string[]) => [...enterProxy(nginx), ...argv];
  const follower = startFollower(topology, {
    name,
    dir,
    configFile,
    pidFile,
    controlKeyFile: options.controlKeyFile,
    own: options.own,
    enter,
  });
  const proxy: LocalHaProxy = {
    index,
    name,
    namespace,
    address,
    dir,
    configFile,
    nginx,
    keepalived,
    specs: { nginx: nginxSpec, vrrp },
    follower,
    state: () => (existsSync(stateFile) ? readFileSync(stateFile, 'utf8').trim() : undefined),
    access: () => localProxy({ name, pidFile, configFile, prefix: dir, enter: enterProxy(proxy.nginx) }),
    alive: () => running(proxy.nginx),
  };
  return proxy;
}

/** Until one proxy holds the virtual address; a process that exits first, or the deadline, is an error with its output. */
async function waitForHolder(proxies: LocalHaProxy[], virtualAddress: string, holder: () => LocalHaProxy | undefined, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!holder()) {
    const dead = proxies.flatMap((p) => [p.nginx, p.keepalived]).find((p) => !running(p));
    if (dead) throw new Error(`${dead.name} exited before the virtual address was taken:\n${dead.output().trim()}`);
    if (Date.now() > deadline) {
      const tails = proxies.map((p) => `${p.keepalived.name}: ${p.keepalived.output().trim().split('\n').slice(-5).join('\n')}`);
      throw new Error(`no proxy took the virtual address ${virtualAddress} within ${timeoutMs} ms:\n${tails.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Seconds until a TLS handshake on the virtual address succeeds again, probed every `everyMs`:
 * the failover time as a client sees it (the address moved and nginx there answers).
 */
export async function timeUntilAnswering(
  address: string,
  port: number,
  options: { since: number; timeoutMs?: number; everyMs?: number },
): Promise<number | undefined> {
  const deadline = options.since + (options.timeoutMs ?? 60_000);
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = tlsConnect({ host: address, port, rejectUnauthorized: false, timeout: 500 }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
      socket.on('timeout', () => {
        socket.destroy();
        resolve(false);
      });
    });
    if (ok) return (Date.now() - options.since) / 1000;
    await new Promise((r) => setTimeout(r, options.everyMs ?? 50));
  }
  return undefined;
}
