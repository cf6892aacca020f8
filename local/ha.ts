import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { proxyNames, type Topology } from '../app/src/topology';
import { PROXY_PORTS, renderNginxConf } from '../nginx/render';
import { renderCheckScript, renderKeepalivedConf, renderNotifyScript } from '../keepalived/render';
import { localProxy, type ProxyAccess } from '../control/access';
import { startFollower, stopFollower } from './follower';
import { inNamespace, type NetnsLab } from './netns';
import { running, stop, waitForPort, type Owned, type start } from './processes';
import { nginxArgv } from '../components/proxy';
import { keepalivedArgv } from '../components/vrrp';

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
      await Promise.all(proxies.map((p) => stop(p.keepalived, 'SIGTERM', 5_000)));
      await Promise.all(proxies.map((p) => stopFollower(p.follower)));
      await Promise.all(proxies.map((p) => stop(p.nginx, 'SIGQUIT', 5_000)));
    },
  };
}

/** The files of one proxy of the pair, written into its directory: nginx.conf and keepalived's bundle. */
function writeHaProxyFiles(topology: Topology, proxy: { index: number; name: string; dir: string }, options: HaPairOptions) {
  const { index, name, dir } = proxy;
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const files = {
    configFile: join(dir, 'nginx.conf'),
    checkScript: join(dir, 'check.sh'),
    notifyScript: join(dir, 'notify.sh'),
    stateFile: join(dir, 'state'),
    keepalivedConf: join(dir, 'keepalived.conf'),
  };
  const nginxConf = renderNginxConf(topology, {
    upstreams: options.upstreams,
    certFile: options.certFile,
    keyFile: options.keyFile,
    sessionTicketKeyFile: options.ticketKeyFile,
    listenAddress: '0.0.0.0',
    httpsPort: PROXY_PORTS.https,
    httpPort: PROXY_PORTS.http,
    runtimeDir: dir,
  });
  writeFileSync(files.configFile, nginxConf);
  writeFileSync(files.checkScript, renderCheckScript(PROXY_PORTS.http));
  writeFileSync(files.notifyScript, renderNotifyScript({ proxy: name, stateFile: files.stateFile, metricFile: join(dir, 'vrrp.prom') }));
  chmodSync(files.checkScript, 0o755);
  chmodSync(files.notifyScript, 0o755);
  const { checkScript, notifyScript } = files;
  writeFileSync(files.keepalivedConf, renderKeepalivedConf(topology, { index, interface: 'eth0', checkScript, notifyScript }));
  return files;
}

/** One proxy of the pair in its namespace: nginx (listening), keepalived, and the follower that announces reloads. */
async function startHaProxy(
  topology: Topology,
  place: { index: number; name: string; namespace: string; address: string },
  options: HaPairOptions,
): Promise<LocalHaProxy> {
  const { index, name, namespace, address } = place;
  const dir = join(options.runtimeDir, name);
  const { configFile, stateFile, keepalivedConf } = writeHaProxyFiles(topology, { index, name, dir }, options);
  // Its own host name (a UTS namespace), as a container has: replicas tell proxies apart by it.
  const [nsenter, ...nginxArgs] = inNamespace(namespace, nginxArgv({ config: configFile, prefix: dir }), { hostname: name });
  const nginx = options.own(name, nsenter, nginxArgs, { cwd: dir, logFile: join(dir, 'logs', 'nginx.log') });
  const vrrpFiles = { config: keepalivedConf, pidFile: join(dir, 'keepalived.pid'), vrrpPidFile: join(dir, 'vrrp.pid') };
  const [, ...keepalivedArgs] = inNamespace(namespace, keepalivedArgv(vrrpFiles));
  const keepalived = options.own(`keepalived-${index}`, nsenter, keepalivedArgs, {
    cwd: dir,
    logFile: join(dir, 'logs', 'keepalived.log'),
  });
  await waitForPort(PROXY_PORTS.https, nginx, 20_000, address);
  // In nginx's own network and host-name namespaces (entered once nginx listens, so they are
  // its final ones): the announcement names the proxy by its host name.
  const pidFile = join(dir, 'nginx.pid');
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
