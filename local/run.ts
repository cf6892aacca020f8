import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pageOrigins, replicaName, usesDevelopmentIdp, type Topology } from '../app/src/topology';
import { ConfigError } from '../app/src/shared/errors';
import { DEFAULT_TOKEN_TTL_MS, DEFAULT_TOKEN_VIA, type TokenVia } from '../app/src/shared/profile';
import { ensureTopologyCertificates, type KeyAlgorithm } from '../certs/generate';
import { nginxErrorLog, PROXY_PORTS, renderNginxConf } from '../nginx/render';
import { httpReplica, localProxy, type ProxyAccess, type ReplicaAccess } from '../control/access';
import { nginxWorkers, reloadAndAnnounce, announcementTiming, type ReloadResult } from '../control/reload';
import { startBroker, type LocalBroker } from './broker';
import { startFollower, stopFollower } from './follower';
import { startHaPair, type LocalHaPair } from './ha';
import type { NetnsLab } from './netns';
import { reapDeadRuns, recordOwner, releaseOwner, RUN_MARK_ENV, RUN_PREFIX } from './leftovers';
import { freePort, running, start, startComponent, stop, stopComponent, waitForPort, type Owned } from './processes';
import { proxySpec } from '../components/proxy';
import { serverSpec } from '../components/server';
import type { ComponentSpec } from '../components/spec';
import { nginxExporterSpec, prometheusSpec } from '../components/monitoring';
import { CLIENT_ARGV } from '../components/load-client';
import { builtApp } from './build';
import { builtPage } from '../web/build';
import { startIdp, withDevAuth, type LocalIdp } from './idp';
import { writeSecret } from './secrets';

export const ROOT = resolve(__dirname, '..');

export interface LocalReplica {
  readonly id: string;
  readonly port: number;
  /** How it runs and stops (components/server.ts). */
  readonly spec: ComponentSpec;
  process: Owned;
}

/** Prometheus and the nginx exporter as local processes (Debian's prometheus, prometheus-nginx-exporter). */
export interface LocalMonitoring {
  /** http:// base URL of Prometheus. */
  readonly prometheusUrl: string;
  readonly exporterPort: number;
  /** The port the load client should serve /metrics on (Prometheus scrapes it). */
  readonly loadMetricsPort: number;
  readonly prometheus: Owned;
  readonly exporter: Owned;
}

export interface LocalRun {
  readonly topology: Topology;
  /** wss:// URL of the WebSocket path through nginx. */
  readonly url: string;
  readonly httpsPort: number;
  readonly httpPort: number;
  readonly caFile: string;
  readonly runtimeDir: string;
  readonly replicas: LocalReplica[];
  readonly nginx: Owned;
  /** The rendered nginx.conf. */
  readonly config: string;
  /** Present when started with monitoring. */
  readonly monitoring?: LocalMonitoring;
  /** Present when the topology enables the broker. */
  readonly broker?: LocalBroker;
  /** Present with auth (the topology's, localAuth): the development OpenID provider. */
  readonly idp?: LocalIdp;
  /** The follower beside each nginx (local/follower.ts): every reload is announced to the replicas. */
  readonly followers: Owned[];
  /** Present with proxy.ha: the pair of proxies behind the virtual address (`url` points at it). */
  readonly ha?: LocalHaPair;
  /** Each nginx's error log (one per proxy). */
  readonly nginxErrorLogs: string[];
  /** The load client's arguments after `node`: the same compiled app as the replicas (local/build.ts). */
  readonly clientCommand: readonly string[];
  /** Stops one replica (SIGTERM: a graceful drain; SIGKILL: a crash). */
  stopReplica(index: number, signal?: NodeJS.Signals): Promise<void>;
  /** Reloads nginx (same config) and announces its new workers to the replicas (control/reload.ts). */
  reloadProxy(): Promise<ReloadResult>;
  /** nginx's workers now: current, and retired ones still shutting down. */
  proxyWorkers(): ReturnType<typeof nginxWorkers>;
  /** The replicas' control endpoints (the running ones). */
  replicaAccess(): ReplicaAccess[];
  /**
   * The environment mark for a process the caller starts as part of this run (the load client):
   * with adopt(), a crashed run's next start finds and kills it too.
   */
  readonly mark: Record<string, string>;
  adopt(pid: number): void;
  /** Stops everything; keeps the runtime directory (logs) when asked. */
  stop(options?: { keepLogs?: boolean }): Promise<void>;
}

/** The installed nginx's version ("1.22.1"), or undefined when nginx is missing. */
export function nginxVersion(): string | undefined {
  // `nginx -v` prints to stderr.
  const r = spawnSync('nginx', ['-v'], { encoding: 'utf8' });
  return /nginx\/(\d+\.\d+(?:\.\d+)?)/.exec(`${r.stdout ?? ''}${r.stderr ?? ''}`)?.[1];
}

/**
 * The local monitoring programs: the exporter's binary (Debian names it prometheus-nginx-exporter,
 * upstream nginx-prometheus-exporter), or what to install when it or Prometheus is missing.
 */
export function monitoringTools(): { exporter: string; missing?: undefined } | { exporter?: undefined; missing: string } {
  const exporter = ['prometheus-nginx-exporter', 'nginx-prometheus-exporter'].find((b) => spawnSync(b, ['--version']).error === undefined);
  const missing = [
    spawnSync('prometheus', ['--version']).error ? 'prometheus' : undefined,
    exporter ? undefined : 'prometheus-nginx-exporter',
  ].filter(Boolean);
  if (missing.length)
    return { missing: `${missing.join(' and ')} not installed. On Debian/Ubuntu: sudo apt-get install -y ${missing.join(' ')}` };
  return { exporter: exporter! };
}

export interface LocalOptions {
  httpsPort?: number;
  httpPort?: number;
  keyAlgorithm?: KeyAlgorithm;
  /** Also start Prometheus and the nginx exporter, with the scrape config and rules the stack uses. */
  monitoring?: boolean;
  /**
   * With proxy.ha: the lab (local/netns.ts) whose namespaces hold the proxies. The replicas then
   * listen on the lab's host address, where the proxy namespaces reach them.
   */
  lab?: NetnsLab;
  /**
   * With auth against the development IdP (the topology's default, usesDevelopmentIdp): the
   * lifetime of each virtual user's token.
   * @default DEFAULT_TOKEN_TTL_MS (10 minutes)
   */
  tokenTtlMs?: number;
  /**
   * With auth: how each virtual user sends its token (LoadProfile's `tokens.via`).
   * @default DEFAULT_TOKEN_VIA
   */
  tokenVia?: TokenVia;
}

/**
 * The kernel caps a listen backlog at net.core.somaxconn without a word: a topology asking for
 * more would get less than it says. Refused, naming the field.
 */
export function checkListenBacklog(backlog: number, somaxconnFile = '/proc/sys/net/core/somaxconn'): void {
  let somaxconn: number;
  try {
    somaxconn = Number(readFileSync(somaxconnFile, 'utf8').trim());
  } catch {
    return; // not Linux: nothing to compare with
  }
  if (backlog > somaxconn) {
    throw new ConfigError('topology', [
      {
        field: 'proxy.listenBacklog',
        rule: `${backlog} exceeds this machine's net.core.somaxconn (${somaxconn}), which caps it: lower it, or raise the sysctl (sysctl -w net.core.somaxconn=${backlog})`,
      },
    ]);
  }
}

/**
 * The processes of one run, in its runtime directory: each carries the run's mark and is
 * recorded, so the next start finds and kills what a crashed run left (local/leftovers.ts).
 */
class RunProcesses {
  readonly children: Owned[] = [];
  private readonly adopted: number[] = [];
  readonly runtimeDir: string;
  readonly logsDir: string;

  constructor() {
    // A run that died (SIGKILL, a crash) left its processes and directory: clear them first.
    const reaped = reapDeadRuns();
    if (reaped.runs.length)
      console.error(`cleaned up ${reaped.runs.length} dead local run(s): killed ${reaped.killed.length} leftover process(es)`);
    this.runtimeDir = mkdtempSync(join(tmpdir(), RUN_PREFIX));
    this.logsDir = join(this.runtimeDir, 'logs');
    mkdirSync(this.logsDir, { recursive: true });
  }

  readonly own: Own = (name, command, args, options = {}) => {
    const p = start(name, command, args, { ...options, env: { ...(options.env ?? process.env), [RUN_MARK_ENV]: this.runtimeDir } });
    this.children.push(p);
    this.record();
    return p;
  };

  /** A process the caller started as part of the run (the load client). */
  adopt(pid: number): void {
    this.adopted.push(pid);
    this.record();
  }

  /** After a failed start: everything killed, the directory removed. */
  async abandon(): Promise<void> {
    await Promise.all(this.children.map((c) => stop(c, 'SIGKILL')));
    rmSync(this.runtimeDir, { recursive: true, force: true });
  }

  private record(): void {
    recordOwner(this.runtimeDir, [...this.children.flatMap((c) => (c.child.pid ? [c.child.pid] : [])), ...this.adopted]);
  }
}

type Own = (...args: Parameters<typeof start>) => Owned;
type Certificates = ReturnType<typeof ensureTopologyCertificates>;

/** The proxy in front of the replicas: one nginx on loopback, or the HA pair in the lab. */
interface LocalFront {
  readonly url: string;
  readonly httpsPort: number;
  readonly httpPort: number;
  readonly nginx: Owned;
  readonly config: string;
  readonly followers: Owned[];
  readonly ha?: LocalHaPair;
  readonly nginxErrorLogs: string[];
  /** The proxies a reload reaches: the pair's live ones, each in its namespaces, or the one nginx. */
  access(): ProxyAccess[];
  stop(): Promise<void>;
}

/**
 * Whether the run has auth: the topology's auth section decides. A local run starts the development
 * IdP itself; a topology naming another provider is refused, since the load client gets its
 * tokens from the development IdP.
 */
function localAuth(topology: Topology): boolean {
  if (topology.auth.mode === 'none') return false;
  if (!usesDevelopmentIdp(topology.auth))
    throw new ConfigError('topology', [
      {
        field: 'auth.issuer',
        rule: 'a local run starts its own development IdP: leave auth.issuer and auth.jwksUri out, or set auth.mode none',
      },
    ]);
  return true;
}

/**
 * Starts the topology on loopback with real processes: N server replicas on free ports and
 * nginx in front with the rendered config (TLS on a free port). Everything it starts is
 * stopped by stop(), and killed if this process exits first.
 */
export async function startLocalRun(asked: Topology, options: LocalOptions = {}): Promise<LocalRun> {
  let topology = asked;
  checkListenBacklog(topology.proxy.listenBacklog);
  const { lab } = options;
  if (topology.proxy.ha.enabled && !lab) throw new Error('startLocalRun: proxy.ha needs a lab (local/netns.ts) for the proxies');
  // The same files the stack mounts into the proxy.
  const certs = ensureTopologyCertificates(topology, ROOT, { algorithm: options.keyAlgorithm });
  const processes = new RunProcesses();
  try {
    // The broker first: the replicas connect to it as they start.
    // With auth the broker is closed to strangers too: users with generated passwords (components/broker-auth.ts).
    const auth = localAuth(topology);
    const credentials = auth ? { subjectPrefix: topology.broker.subjectPrefix, stream: topology.broker.stream } : undefined;
    const broker = topology.broker.enabled ? await startBroker(processes.runtimeDir, processes.own, { credentials }) : undefined;
    const host = lab?.hostAddress ?? '127.0.0.1';
    const appDir = await builtApp();
    // The page's origin is the proxy's: known before the provider starts, which lets it sign people in there.
    const httpsPort = lab ? undefined : (options.httpsPort ?? (await freePort()));
    const origins = httpsPort && topology.proxy.page.enabled ? pageOrigins(httpsPort) : [];
    const idp = auth
      ? await startIdp(processes.runtimeDir, { appDir, logsDir: processes.logsDir, startProcess: processes.own, pageOrigins: origins })
      : undefined;
    if (idp)
      topology = withDevAuth(topology, idp, {
        tokenTtlMs: options.tokenTtlMs ?? DEFAULT_TOKEN_TTL_MS,
        tokenVia: options.tokenVia ?? DEFAULT_TOKEN_VIA,
        apiKeyFile: writeSecret(processes.runtimeDir, 'api-key'),
      });
    const replicas = await startReplicas(topology, processes, {
      appDir,
      host,
      certs,
      brokerUrl: broker?.url,
      brokerCredentials: broker?.credentials?.replica,
    });
    const upstreams = replicas.map((r) => `${host}:${r.port}`);
    const front = lab
      ? await startPairFront(topology, processes, { lab, certs, upstreams })
      : await startSingleFront(topology, processes, { certs, upstreams, httpsPort, httpPort: options.httpPort });
    const monitoring = options.monitoring
      ? await startMonitoring(topology, processes.runtimeDir, replicas, front.httpPort, processes.own)
      : undefined;
    const replicaAccess = replicaControls(replicas, host, readFileSync(certs.controlKeyFile, 'utf8').trim());
    return localRun(topology, { processes, certs, appDir, broker, idp, replicas, front, monitoring, replicaAccess });
  } catch (error) {
    await processes.abandon();
    throw error;
  }
}

/** The replicas, each on a free port of `host`, connected to the broker when there is one; resolves once all listen. */
async function startReplicas(
  topology: Topology,
  processes: RunProcesses,
  options: {
    appDir: string;
    host: string;
    certs: Certificates;
    brokerUrl?: string;
    brokerCredentials?: { user: string; passwordFile: string };
  },
): Promise<LocalReplica[]> {
  const replicas: LocalReplica[] = [];
  for (let i = 0; i < topology.replicas; i++) {
    const id = replicaName(i);
    const port = await freePort();
    const spec = serverSpec(topology, {
      replicaId: id,
      controlKeyFile: options.certs.controlKeyFile,
      port,
      host: options.host,
      brokerUrls: options.brokerUrl ? [options.brokerUrl] : undefined,
      brokerCredentials: options.brokerCredentials,
    });
    // The compiled app, as the image runs it (dist/ in its working directory).
    const p = startComponent(id, spec, { cwd: options.appDir, logFile: join(processes.logsDir, `${id}.log`), startProcess: processes.own });
    replicas.push({ id, port, spec, process: p });
  }
  await Promise.all(replicas.map((r) => waitForPort(r.port, r.process, undefined, options.host)));
  return replicas;
}

/** One nginx on loopback with the rendered config, on free ports unless given, and its follower. */
async function startSingleFront(
  topology: Topology,
  processes: RunProcesses,
  options: { certs: Certificates; upstreams: string[]; httpsPort?: number; httpPort?: number },
): Promise<LocalFront> {
  const { runtimeDir } = processes;
  const httpsPort = options.httpsPort ?? (await freePort());
  const httpPort = options.httpPort ?? (await freePort());
  const { certFile, keyFile, controlKeyFile } = options.certs;
  const config = renderNginxConf(topology, {
    upstreams: options.upstreams,
    certFile,
    keyFile,
    listenAddress: '127.0.0.1',
    httpsPort,
    httpPort,
    runtimeDir,
    pageDir: builtPage(),
  });
  const configFile = join(runtimeDir, 'nginx.conf');
  const pidFile = join(runtimeDir, 'nginx.pid');
  writeFileSync(configFile, config);
  // nginx opens <prefix>/logs/error.log before it reads the config's error_log (logsDir exists).
  const spec = proxySpec(topology, { config: configFile, pidFile, prefix: runtimeDir });
  const nginx = startComponent('nginx', spec, { cwd: runtimeDir, startProcess: processes.own });
  await waitForPort(httpsPort, nginx);
  const follower = startFollower(topology, { name: 'nginx', dir: runtimeDir, configFile, pidFile, controlKeyFile, own: processes.own });
  return {
    url: `wss://localhost:${httpsPort}${topology.server.path}`,
    httpsPort,
    httpPort,
    nginx,
    config,
    followers: [follower],
    nginxErrorLogs: [nginxErrorLog(runtimeDir)],
    access: () => [localProxy({ name: 'nginx', pidFile, configFile, prefix: runtimeDir })],
    stop: async () => void (await Promise.all([stopFollower(follower), stopComponent(nginx, spec)])),
  };
}

/** The HA pair (local/ha.ts) in the lab's namespaces, behind the virtual address. */
async function startPairFront(
  topology: Topology,
  processes: RunProcesses,
  options: { lab: NetnsLab; certs: Certificates; upstreams: string[] },
): Promise<LocalFront> {
  const { certFile, keyFile, ticketKeyFile, controlKeyFile } = options.certs;
  const ha = await startHaPair(topology, options.lab, {
    upstreams: options.upstreams,
    certFile,
    keyFile,
    ticketKeyFile,
    controlKeyFile,
    runtimeDir: processes.runtimeDir,
    own: processes.own,
  });
  return {
    url: `wss://${ha.virtualAddress}${topology.server.path}`,
    httpsPort: PROXY_PORTS.https,
    httpPort: PROXY_PORTS.http,
    nginx: ha.proxies[0].nginx,
    config: readFileSync(ha.proxies[0].configFile, 'utf8'),
    followers: ha.proxies.map((p) => p.follower),
    ha,
    nginxErrorLogs: ha.proxies.map((p) => nginxErrorLog(p.dir)),
    access: () => ha.proxies.filter((p) => p.alive()).map((p) => p.access()),
    stop: () => ha.stop(),
  };
}

/** The running replicas' control endpoints. */
function replicaControls(replicas: LocalReplica[], host: string, controlKey: string): () => ReplicaAccess[] {
  return () => replicas.filter((r) => running(r.process)).map((r) => httpReplica(r.id, `http://${host}:${r.port}`, controlKey));
}

/** The started parts as one run: what tests and the runner look at, and how it is reloaded and stopped. */
function localRun(
  topology: Topology,
  parts: {
    processes: RunProcesses;
    certs: Certificates;
    appDir: string;
    broker?: LocalBroker;
    idp?: LocalIdp;
    replicas: LocalReplica[];
    front: LocalFront;
    monitoring?: LocalMonitoring;
    replicaAccess: () => ReplicaAccess[];
  },
): LocalRun {
  const { processes, broker, idp, replicas, front, monitoring, replicaAccess } = parts;
  const { runtimeDir } = processes;
  return {
    topology,
    url: front.url,
    httpsPort: front.httpsPort,
    httpPort: front.httpPort,
    caFile: parts.certs.caFile,
    runtimeDir,
    replicas,
    nginx: front.nginx,
    config: front.config,
    monitoring,
    broker,
    idp,
    followers: front.followers,
    ha: front.ha,
    nginxErrorLogs: front.nginxErrorLogs,
    clientCommand: [join(parts.appDir, CLIENT_ARGV.built.at(-1)!)],
    stopReplica: (i, signal = 'SIGTERM') => stop(replicas[i].process, signal, replicas[i].spec.stop?.graceMs),
    async reloadProxy() {
      // One proxy after the other, as an operator would: each announces its own new workers.
      const results: ReloadResult[] = [];
      for (const proxy of front.access()) {
        const options = { workerProcesses: topology.proxy.workerProcesses };
        results.push(await reloadAndAnnounce(proxy, replicaAccess(), announcementTiming(topology.proxy), options));
      }
      return mergeReloads(results);
    },
    proxyWorkers: () => nginxWorkers(front.access()[0]),
    replicaAccess,
    mark: { [RUN_MARK_ENV]: runtimeDir },
    adopt: (pid) => processes.adopt(pid),
    async stop({ keepLogs = false } = {}) {
      await Promise.all(replicas.map((r) => stopComponent(r.process, r.spec)));
      await front.stop();
      if (monitoring) await Promise.all([monitoring.prometheus, monitoring.exporter].map((h) => stop(h, 'SIGTERM', 10_000)));
      if (broker) await broker.stop();
      await idp?.stop();
      if (keepLogs) releaseOwner(runtimeDir);
      else rmSync(runtimeDir, { recursive: true, force: true });
    },
  };
}

/**
 * Prometheus and the exporter on loopback: the same renderers as the stack, with loopback
 * targets. Prometheus keeps its data in the runtime directory (kept with --keep-logs).
 */
async function startMonitoring(
  topology: Topology,
  runtimeDir: string,
  replicas: LocalReplica[],
  httpPort: number,
  own: Own,
): Promise<LocalMonitoring> {
  const tools = monitoringTools();
  if (tools.missing !== undefined) throw new Error(`monitoring: ${tools.missing}`);
  const [exporterPort, prometheusPort, loadMetricsPort] = [await freePort(), await freePort(), await freePort()];
  const exporterSpec = nginxExporterSpec({
    proxy: `127.0.0.1:${httpPort}`,
    listen: `127.0.0.1:${exporterPort}`,
    program: tools.exporter,
  });
  const exporter = startComponent('nginx-exporter', exporterSpec, {
    logFile: join(runtimeDir, 'logs', 'nginx-exporter.log'),
    startProcess: own,
  });
  await waitForPort(exporterPort, exporter);

  const dir = join(runtimeDir, 'prometheus');
  const spec = prometheusSpec(topology, {
    configDir: dir,
    dataDir: join(dir, 'data'),
    address: '127.0.0.1',
    port: prometheusPort,
    targets: {
      servers: replicas.map((r) => ({ replica: r.id, target: `127.0.0.1:${r.port}` })),
      nginxExporter: `127.0.0.1:${exporterPort}`,
      loadClient: `127.0.0.1:${loadMetricsPort}`,
      self: `127.0.0.1:${prometheusPort}`,
    },
  });
  const prometheus = startComponent('prometheus', spec, { logFile: join(runtimeDir, 'logs', 'prometheus.log'), startProcess: own });
  await waitForPort(prometheusPort, prometheus);
  return { prometheusUrl: `http://127.0.0.1:${prometheusPort}`, exporterPort, loadMetricsPort, prometheus, exporter };
}

/** Several proxies' reloads as one result: their workers together, each replica's announcements summed. */
export function mergeReloads(results: ReloadResult[]): ReloadResult {
  if (results.length === 1) return results[0];
  const announced: ReloadResult['announced'] = {};
  for (const r of results) {
    for (const [replica, reply] of Object.entries(r.announced)) {
      const sum = announced[replica];
      announced[replica] = sum
        ? { ...reply, scheduled: sum.scheduled + reply.scheduled, retiredWorkers: sum.retiredWorkers + reply.retiredWorkers }
        : reply;
    }
  }
  return {
    workers: results.flatMap((r) => r.workers),
    retiring: results.flatMap((r) => r.retiring),
    announced,
    seconds: results.reduce((a, r) => a + r.seconds, 0),
  };
}
