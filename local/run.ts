import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CONTROL_KEY_ENV, replicaName, stopGraceMs, toBrokerEnv, toServerEnv, type Topology } from '../app/src/topology';
import { ConfigError } from '../app/src/shared/errors';
import { ensureTopologyCertificates, type KeyAlgorithm } from '../certs/generate';
import { PROXY_PORTS, renderNginxConf } from '../nginx/render';
import { nginxExporterArgs, prometheusArgs, renderPrometheusFiles } from '../monitoring/prometheus';
import { httpReplica, localProxy, type ProxyAccess, type ReplicaAccess } from '../control/access';
import { nginxWorkers, reloadAndAnnounce, announcementTiming, type ReloadResult } from '../control/reload';
import { startBroker, type LocalBroker } from './broker';
import { startFollower, stopFollower } from './follower';
import { startHaPair, type LocalHaPair } from './ha';
import type { NetnsLab } from './netns';
import { reapDeadRuns, recordOwner, releaseOwner, RUN_MARK_ENV, RUN_PREFIX } from './leftovers';
import { freePort, running, start, stop, waitForPort, type Owned } from './processes';
import { nginxArgv } from '../components/proxy';

export const ROOT = resolve(__dirname, '..');

export interface LocalReplica {
  readonly id: string;
  readonly port: number;
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

export interface LocalTopology {
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
  /** The follower beside each nginx (local/follower.ts): every reload is announced to the replicas. */
  readonly followers: Owned[];
  /** Present with proxy.ha: the pair of proxies behind the virtual address (`url` points at it). */
  readonly ha?: LocalHaPair;
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

/** How a replica is started: from source through tsx, so what runs is what is checked out. */
export const SERVER_SOURCE_ARGS = ['--import', 'tsx', join(ROOT, 'app/src/server/main.ts')];
export const CLIENT_COMMAND = ['--import', 'tsx', join(ROOT, 'app/src/client/main.ts')];

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
 * Starts the topology on loopback with real processes: N server replicas on free ports and
 * nginx in front with the rendered config (TLS on a free port). Everything it starts is
 * stopped by stop(), and killed if this process exits first.
 */
export async function startLocalTopology(topology: Topology, options: LocalOptions = {}): Promise<LocalTopology> {
  checkListenBacklog(topology.proxy.listenBacklog);
  // The same files the stack mounts into the proxy.
  const certs = ensureTopologyCertificates(topology, ROOT, { algorithm: options.keyAlgorithm });
  // A run that died (SIGKILL, a crash) left its processes and directory: clear them first.
  const reaped = reapDeadRuns();
  if (reaped.runs.length)
    console.error(`cleaned up ${reaped.runs.length} dead local run(s): killed ${reaped.killed.length} leftover process(es)`);
  const runtimeDir = mkdtempSync(join(tmpdir(), RUN_PREFIX));
  const logsDir = join(runtimeDir, 'logs');
  mkdirSync(logsDir, { recursive: true });
  const children: Owned[] = [];
  const adopted: number[] = [];
  const record = () => recordOwner(runtimeDir, [...children.flatMap((c) => (c.child.pid ? [c.child.pid] : [])), ...adopted]);
  /** Every child carries the run's mark and is recorded, so a crashed run can be cleaned up. */
  const own = (name: string, command: string, args: string[], options: Parameters<typeof start>[3] = {}) => {
    const p = start(name, command, args, { ...options, env: { ...(options.env ?? process.env), [RUN_MARK_ENV]: runtimeDir } });
    children.push(p);
    record();
    return p;
  };
  const replicas: LocalReplica[] = [];
  const { lab } = options;
  if (topology.proxy.ha.enabled && !lab) throw new Error('startLocalTopology: proxy.ha needs a lab (local/netns.ts) for the proxies');
  const replicaHost = lab?.hostAddress ?? '127.0.0.1';
  let brokerEnv: Record<string, string> = {};
  const startReplica = async (i: number, port: number) => {
    const id = replicaName(i);
    const env = {
      ...process.env,
      ...toServerEnv({ ...topology.server, port }, id, { host: replicaHost }),
      ...brokerEnv,
      [CONTROL_KEY_ENV]: certs.controlKeyFile,
    };
    const p = own(id, process.execPath, SERVER_SOURCE_ARGS, { env, cwd: ROOT, logFile: join(logsDir, `${id}.log`) });
    return { id, port, process: p };
  };
  let nginx: Owned | undefined;
  let ha: LocalHaPair | undefined;
  const followers: Owned[] = [];
  const helpers: Owned[] = [];
  let broker: LocalBroker | undefined;
  try {
    // The broker first: the replicas connect to it as they start.
    if (topology.broker.enabled) {
      broker = await startBroker(runtimeDir, own);
      brokerEnv = toBrokerEnv({ ...topology, broker: { ...topology.broker, urls: [broker.url] } });
    }
    for (let i = 0; i < topology.replicas; i++) replicas.push(await startReplica(i, await freePort()));
    await Promise.all(replicas.map((r) => waitForPort(r.port, r.process, undefined, replicaHost)));

    const upstreams = replicas.map((r) => `${replicaHost}:${r.port}`);
    let httpsPort: number;
    let httpPort: number;
    let config: string;
    let confFile: string;
    let url: string;
    if (lab) {
      ha = await startHaPair(topology, lab, {
        upstreams,
        certFile: certs.certFile,
        keyFile: certs.keyFile,
        ticketKeyFile: certs.ticketKeyFile,
        controlKeyFile: certs.controlKeyFile,
        runtimeDir,
        own,
      });
      ({ https: httpsPort, http: httpPort } = PROXY_PORTS);
      nginx = ha.proxies[0].nginx;
      followers.push(...ha.proxies.map((p) => p.follower));
      confFile = ha.proxies[0].configFile;
      config = readFileSync(confFile, 'utf8');
      url = `wss://${ha.virtualAddress}${topology.server.path}`;
    } else {
      httpsPort = options.httpsPort ?? (await freePort());
      httpPort = options.httpPort ?? (await freePort());
      config = renderNginxConf(topology, {
        upstreams,
        certFile: certs.certFile,
        keyFile: certs.keyFile,
        listenAddress: '127.0.0.1',
        httpsPort,
        httpPort,
        runtimeDir,
      });
      confFile = join(runtimeDir, 'nginx.conf');
      writeFileSync(confFile, config);
      // nginx opens <prefix>/logs/error.log before it reads the config's error_log (logsDir exists).
      const [command, ...args] = nginxArgv({ config: confFile, prefix: runtimeDir });
      nginx = own('nginx', command, args, { cwd: runtimeDir });
      await waitForPort(httpsPort, nginx);
      followers.push(
        startFollower(topology, {
          name: 'nginx',
          dir: runtimeDir,
          configFile: confFile,
          pidFile: join(runtimeDir, 'nginx.pid'),
          controlKeyFile: certs.controlKeyFile,
          own,
        }),
      );
      url = `wss://localhost:${httpsPort}${topology.server.path}`;
    }

    const monitoring = options.monitoring
      ? await startMonitoring(topology, runtimeDir, replicas, httpPort, (...args) => {
          const p = own(...args);
          helpers.push(p);
          return p;
        })
      : undefined;
    const started = nginx;
    const pair = ha;
    // The proxies a reload reaches: the pair's live ones, each in its namespaces, or the one nginx.
    const proxies = (): ProxyAccess[] =>
      pair
        ? pair.proxies.filter((p) => p.alive()).map((p) => p.access())
        : [localProxy({ name: 'nginx', pidFile: join(runtimeDir, 'nginx.pid'), configFile: confFile, prefix: runtimeDir })];
    const controlKey = readFileSync(certs.controlKeyFile, 'utf8').trim();
    const replicaAccess = () =>
      replicas.filter((r) => running(r.process)).map((r) => httpReplica(r.id, `http://${replicaHost}:${r.port}`, controlKey));
    return {
      topology,
      url,
      httpsPort,
      httpPort,
      caFile: certs.caFile,
      runtimeDir,
      replicas,
      nginx: started,
      config,
      monitoring,
      broker,
      followers,
      ha,
      stopReplica: (i, signal = 'SIGTERM') => stop(replicas[i].process, signal, stopGraceMs(topology.server)),
      async reloadProxy() {
        // One proxy after the other, as an operator would: each announces its own new workers.
        const results: ReloadResult[] = [];
        for (const proxy of proxies())
          results.push(
            await reloadAndAnnounce(proxy, replicaAccess(), announcementTiming(topology.proxy), {
              workerProcesses: topology.proxy.workerProcesses,
            }),
          );
        return mergeReloads(results);
      },
      proxyWorkers: () => nginxWorkers(proxies()[0]),
      replicaAccess,
      mark: { [RUN_MARK_ENV]: runtimeDir },
      adopt(pid) {
        adopted.push(pid);
        record();
      },
      async stop({ keepLogs = false } = {}) {
        await Promise.all(replicas.map((r) => stop(r.process, 'SIGTERM', stopGraceMs(topology.server))));
        if (pair) await pair.stop();
        else await Promise.all([...followers.map(stopFollower), stop(started, 'SIGQUIT', 5000)]);
        await Promise.all(helpers.map((h) => stop(h, 'SIGTERM', 10_000)));
        if (broker) await broker.stop();
        if (keepLogs) releaseOwner(runtimeDir);
        else rmSync(runtimeDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await Promise.all(children.map((c) => stop(c, 'SIGKILL')));
    rmSync(runtimeDir, { recursive: true, force: true });
    throw error;
  }
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
  own: (...args: Parameters<typeof start>) => Owned,
): Promise<LocalMonitoring> {
  const tools = monitoringTools();
  if (tools.missing !== undefined) throw new Error(`monitoring: ${tools.missing}`);
  const [exporterPort, prometheusPort, loadMetricsPort] = [await freePort(), await freePort(), await freePort()];
  const exporter = own(
    'nginx-exporter',
    tools.exporter,
    nginxExporterArgs({ proxy: `127.0.0.1:${httpPort}`, listen: `127.0.0.1:${exporterPort}` }),
    { logFile: join(runtimeDir, 'logs', 'nginx-exporter.log') },
  );
  await waitForPort(exporterPort, exporter);

  const dir = join(runtimeDir, 'prometheus');
  mkdirSync(dir, { recursive: true });
  const files = renderPrometheusFiles(topology, {
    servers: replicas.map((r) => ({ replica: r.id, target: `127.0.0.1:${r.port}` })),
    nginxExporter: `127.0.0.1:${exporterPort}`,
    loadClient: `127.0.0.1:${loadMetricsPort}`,
    self: `127.0.0.1:${prometheusPort}`,
  });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const prometheus = own(
    'prometheus',
    'prometheus',
    prometheusArgs({
      configDir: dir,
      dataDir: join(dir, 'data'),
      retention: topology.monitoring.retention,
      listen: `127.0.0.1:${prometheusPort}`,
    }),
    { logFile: join(runtimeDir, 'logs', 'prometheus.log') },
  );
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
