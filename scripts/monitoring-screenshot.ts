import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { defineTopology, withoutAuth } from '../app/src/topology';
import { LOAD_ENV } from '../app/src/shared/load-env';
import { EXIT, runEntryPoint } from '../app/src/shared/exit';
import { nginxVersion, ROOT, startLocalRun, type LocalRun } from '../local/run';

/**
 * Makes docs/images/prometheus-graph.png from a real run: the local topology with Prometheus,
 * a load that ramps up, holds, loses a replica (SIGTERM: drain, 1001, reconnect) and ramps down,
 * then headless Chromium photographs Prometheus's graph page. Usage:
 *   npx tsx scripts/monitoring-screenshot.ts [out.png]
 */
const OUT = resolve(process.argv[2] ?? `${ROOT}/docs/images/prometheus-graph.png`);
const CHROMIUM = process.env.CHROMIUM ?? 'chromium';

function screenshotTopology(nginxVersion: string) {
  return defineTopology(
    withoutAuth({
      replicas: 3,
      proxy: { nginxVersion },
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
    }),
  );
}

/** The load client through the run; mid-hold one replica is stopped (its clients get 1001 and reconnect to the others). */
async function runLoad(local: LocalRun): Promise<void> {
  const mon = local.monitoring!;
  const args = [...local.clientCommand, local.url, '--ca', local.caFile, '--quiet', '--metrics-port', String(mon.loadMetricsPort)];
  const env = { ...process.env, [LOAD_ENV.profile]: JSON.stringify(local.topology.load) };
  const client = spawn(process.execPath, args, { stdio: 'inherit', env });
  const exited = new Promise((r) => client.on('exit', r));
  await new Promise((r) => setTimeout(r, 28_000));
  console.log('stopping ws-server-2 (SIGTERM: drain)');
  await local.stopReplica(2);
  await exited;
  await new Promise((r) => setTimeout(r, 3_000));
}

/** Headless Chromium's picture of Prometheus's graph page with the two graphs. */
function photograph(prometheusUrl: string): void {
  const graphs = ['sum by (replica) (ws_connections_active)', 'load_connections_open or nginx_connections_active'];
  const params = new URLSearchParams();
  graphs.forEach((expr, i) => {
    params.set(`g${i}.expr`, expr);
    params.set(`g${i}.tab`, '0');
    params.set(`g${i}.range_input`, '75s');
  });
  mkdirSync(dirname(OUT), { recursive: true });
  const flags = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--hide-scrollbars',
    '--window-size=1400,1560',
    '--virtual-time-budget=10000',
  ];
  const shot = spawnSync(CHROMIUM, [...flags, `--screenshot=${OUT}`, `${prometheusUrl}/classic/graph?${params}`], { encoding: 'utf8' });
  if (shot.status !== 0) throw new Error(`chromium failed: ${shot.stderr}`);
}

async function main(): Promise<number> {
  const version = nginxVersion();
  if (!version) throw new Error('nginx is required');
  if (spawnSync(CHROMIUM, ['--version']).error) throw new Error(`${CHROMIUM} is required (apt-get install chromium, or set CHROMIUM)`);
  const local = await startLocalRun(screenshotTopology(version), { monitoring: true });
  try {
    console.log(`prometheus ${local.monitoring!.prometheusUrl}; load running (about 60 s)`);
    await runLoad(local);
    photograph(local.monitoring!.prometheusUrl);
    console.log(`wrote ${OUT}`);
    return EXIT.ok;
  } finally {
    await local.stop();
  }
}

runEntryPoint(main, { expected: [Error] });
