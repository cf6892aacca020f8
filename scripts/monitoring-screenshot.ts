import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { defineTopology } from '../app/src/topology';
import { LOAD_ENV } from '../app/src/shared/load-env';
import { CLIENT_COMMAND, nginxVersion, ROOT, startLocalTopology } from '../local/topology';

/**
 * Makes docs/images/prometheus-graph.png from a real run: the local topology with Prometheus,
 * a load that ramps up, holds, loses a replica (SIGTERM: drain, 1001, reconnect) and ramps down,
 * then headless Chromium photographs Prometheus's graph page. Usage:
 *   npx tsx scripts/monitoring-screenshot.ts [out.png]
 */
const OUT = resolve(process.argv[2] ?? `${ROOT}/docs/images/prometheus-graph.png`);
const CHROMIUM = process.env.CHROMIUM ?? 'chromium';

async function main(): Promise<void> {
  const version = nginxVersion();
  if (!version) throw new Error('nginx is required');
  if (spawnSync(CHROMIUM, ['--version']).error) throw new Error(`${CHROMIUM} is required (apt-get install chromium, or set CHROMIUM)`);
  const topology = defineTopology({
    replicas: 3,
    proxy: { nginxVersion: version },
    server: { pingIntervalMs: 5_000 },
    monitoring: { scrapeIntervalMs: 1_000, evaluationIntervalMs: 1_000 },
    load: {
      stages: [
        { connections: 1500, rampRate: 100, holdMs: 25_000 },
        { connections: 600, rampRate: 100, holdMs: 10_000 },
      ],
      reconnect: { enabled: true, initialDelayMs: 200, maxDelayMs: 2_000 },
      thresholds: [],
      maxDurationMs: 120_000,
    },
  });
  const local = await startLocalTopology(topology, { monitoring: true });
  try {
    const mon = local.monitoring!;
    console.log(`prometheus ${mon.prometheusUrl}; load running (about 60 s)`);
    const client = spawn(
      process.execPath,
      [...CLIENT_COMMAND, local.url, '--ca', local.caFile, '--quiet', '--metrics-port', String(mon.loadMetricsPort)],
      {
        stdio: 'inherit',
        env: { ...process.env, [LOAD_ENV.profile]: JSON.stringify(topology.load) },
      },
    );
    const exited = new Promise((r) => client.on('exit', r));
    // Mid-hold, one replica is stopped: its clients get 1001 and reconnect to the others.
    await new Promise((r) => setTimeout(r, 28_000));
    console.log('stopping ws-server-2 (SIGTERM: drain)');
    await local.stopReplica(2);
    await exited;
    await new Promise((r) => setTimeout(r, 3_000));

    const graphs = ['sum by (replica) (ws_connections_active)', 'load_connections_open or nginx_connections_active'];
    const params = new URLSearchParams();
    graphs.forEach((expr, i) => {
      params.set(`g${i}.expr`, expr);
      params.set(`g${i}.tab`, '0');
      params.set(`g${i}.range_input`, '75s');
    });
    const url = `${mon.prometheusUrl}/classic/graph?${params}`;
    mkdirSync(dirname(OUT), { recursive: true });
    const shot = spawnSync(
      CHROMIUM,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--hide-scrollbars',
        '--window-size=1400,1560',
        '--virtual-time-budget=10000',
        `--screenshot=${OUT}`,
        url,
      ],
      { encoding: 'utf8' },
    );
    if (shot.status !== 0) throw new Error(`chromium failed: ${shot.stderr}`);
    console.log(`wrote ${OUT}`);
  } finally {
    await local.stop();
  }
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
