import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { toServerEnv, type Topology } from '../app/src/topology';
import { ensureTopologyCertificates, type KeyAlgorithm } from '../certs/generate';
import { renderNginxConf } from '../nginx/render';
import { nginxExporterArgs, prometheusArgs, renderPrometheusFiles } from '../stacks/monitoring/prometheus';
import { freePort, start, stop, waitForPort, type Owned } from './processes';

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
  /** Stops one replica (SIGTERM: a graceful drain; SIGKILL: a crash). */
  stopReplica(index: number, signal?: NodeJS.Signals): Promise<void>;
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
  const missing = [spawnSync('prometheus', ['--version']).error ? 'prometheus' : undefined, exporter ? undefined : 'prometheus-nginx-exporter'].filter(Boolean);
  if (missing.length) return { missing: `${missing.join(' and ')} not installed. On Debian/Ubuntu: sudo apt-get install -y ${missing.join(' ')}` };
  return { exporter: exporter! };
}

/** How a replica is started: from source through tsx, so what runs is what is checked out. */
export const SERVER_COMMAND = ['--import', 'tsx', join(ROOT, 'app/src/server/main.ts')];
export const CLIENT_COMMAND = ['--import', 'tsx', join(ROOT, 'app/src/client/main.ts')];

export interface LocalOptions {
  httpsPort?: number;
  httpPort?: number;
  keyAlgorithm?: KeyAlgorithm;
  /** Also start Prometheus and the nginx exporter, with the scrape config and rules the stack uses. */
  monitoring?: boolean;
}

/**
 * Starts the topology on loopback with real processes: N server replicas on free ports and
 * nginx in front with the rendered config (TLS on a free port). Everything it starts is
 * stopped by stop(), and killed if this process exits first.
 */
export async function startLocalTopology(topology: Topology, options: LocalOptions = {}): Promise<LocalTopology> {
  // The same files the stack mounts into the proxy.
  const certs = ensureTopologyCertificates(topology, ROOT, { algorithm: options.keyAlgorithm });
  const runtimeDir = mkdtempSync(join(tmpdir(), 'ws-local-'));
  const replicas: LocalReplica[] = [];
  const startReplica = async (i: number, port: number) => {
    const id = `ws-server-${i}`;
    const env = { ...process.env, ...toServerEnv(topology.server, id), WS_PORT: String(port), WS_HOST: '127.0.0.1' };
    const p = start(id, process.execPath, SERVER_COMMAND, { env, cwd: ROOT });
    return { id, port, process: p };
  };
  let nginx: Owned | undefined;
  const helpers: Owned[] = [];
  try {
    for (let i = 0; i < topology.replicas; i++) replicas.push(await startReplica(i, await freePort()));
    await Promise.all(replicas.map((r) => waitForPort(r.port, r.process)));

    const httpsPort = options.httpsPort ?? (await freePort());
    const httpPort = options.httpPort ?? (await freePort());
    const config = renderNginxConf(topology, {
      upstreams: replicas.map((r) => `127.0.0.1:${r.port}`),
      certFile: certs.certFile,
      keyFile: certs.keyFile,
      listenAddress: '127.0.0.1',
      httpsPort,
      httpPort,
      runtimeDir,
    });
    const confFile = join(runtimeDir, 'nginx.conf');
    writeFileSync(confFile, config);
    // nginx opens <prefix>/logs/error.log before it reads the config's error_log.
    mkdirSync(join(runtimeDir, 'logs'), { recursive: true });
    nginx = start('nginx', 'nginx', ['-c', confFile, '-p', runtimeDir, '-g', 'daemon off;'], { cwd: runtimeDir });
    await waitForPort(httpsPort, nginx);

    const monitoring = options.monitoring ? await startMonitoring(topology, runtimeDir, replicas, httpPort, helpers) : undefined;
    const started = nginx;
    return {
      topology,
      url: `wss://localhost:${httpsPort}${topology.server.path}`,
      httpsPort,
      httpPort,
      caFile: certs.caFile,
      runtimeDir,
      replicas,
      nginx: started,
      config,
      monitoring,
      stopReplica: (i, signal = 'SIGTERM') => stop(replicas[i].process, signal, topology.server.drainDeadlineMs + 5000),
      async stop({ keepLogs = false } = {}) {
        await Promise.all(replicas.map((r) => stop(r.process, 'SIGTERM', topology.server.drainDeadlineMs + 5000)));
        await stop(started, 'SIGQUIT', 5000);
        await Promise.all(helpers.map((h) => stop(h, 'SIGTERM', 10_000)));
        if (!keepLogs) rmSync(runtimeDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await Promise.all(replicas.map((r) => stop(r.process, 'SIGKILL')));
    if (nginx) await stop(nginx, 'SIGKILL');
    await Promise.all(helpers.map((h) => stop(h, 'SIGKILL')));
    throw error;
  }
}

/**
 * Prometheus and the exporter on loopback: the same renderers as the stack, with loopback
 * targets. Prometheus keeps its data in the runtime directory (kept with --keep-logs).
 */
async function startMonitoring(topology: Topology, runtimeDir: string, replicas: LocalReplica[], httpPort: number, owned: Owned[]): Promise<LocalMonitoring> {
  const tools = monitoringTools();
  if (tools.missing !== undefined) throw new Error(`monitoring: ${tools.missing}`);
  const [exporterPort, prometheusPort, loadMetricsPort] = [await freePort(), await freePort(), await freePort()];
  const exporter = start('nginx-exporter', tools.exporter, nginxExporterArgs({ proxy: `127.0.0.1:${httpPort}`, listen: `127.0.0.1:${exporterPort}` }));
  owned.push(exporter);
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
  const prometheus = start(
    'prometheus',
    'prometheus',
    prometheusArgs({ configDir: dir, dataDir: join(dir, 'data'), retention: topology.monitoring.retention, listen: `127.0.0.1:${prometheusPort}` }),
  );
  owned.push(prometheus);
  await waitForPort(prometheusPort, prometheus);
  return { prometheusUrl: `http://127.0.0.1:${prometheusPort}`, exporterPort, loadMetricsPort, prometheus, exporter };
}
