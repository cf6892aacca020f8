import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { defineTopology } from '../app/src/topology';
import { ConfigError } from '../app/src/shared/errors';
import { ensureTopologyCertificates } from '../certs/generate';
import { projectPaths } from '../stacks/paths';
import { checkDocker, checkProvider, checkTerraform, PreflightError } from './preflight';

/**
 * `npm run deploy` / `npm run destroy`: checks what cdktf needs (Docker engine, terraform, the
 * provider) and fails fast with an actionable message, then hands over to `cdktf deploy|destroy`.
 */
const ROOT = resolve(__dirname, '..');

function cdktf(args: string[]): number {
  const r = spawnSync('npx', ['cdktf', ...args], { cwd: ROOT, stdio: 'inherit', env: { ...process.env, CHECKPOINT_DISABLE: '1' } });
  return r.status ?? 1;
}

function main(action: string | undefined): number {
  if (action !== 'deploy' && action !== 'destroy') {
    console.error('usage: tsx scripts/deploy.ts deploy|destroy');
    return 2;
  }
  // Validate first: an invalid topology is refused before anything is touched.
  const topology = defineTopology({}, process.env);
  const paths = projectPaths(ROOT, topology);

  console.log(`docker engine ${checkDocker()}`);
  console.log(checkTerraform());

  if (action === 'deploy') {
    const { outcome } = ensureTopologyCertificates(topology, ROOT);
    console.log(`certificates ${outcome} in ${paths.certsDir}`);
    mkdirSync(paths.reportsDir, { recursive: true });
  }

  if (cdktf(['synth']) !== 0) return 1;
  checkProvider(join(ROOT, 'cdktf.out', 'stacks', topology.name));

  const status = cdktf([action, '--auto-approve']);
  if (status === 0 && action === 'destroy') rmSync(paths.deployDir, { recursive: true, force: true });
  if (status === 0 && action === 'deploy') {
    console.log(`\nload report: ${join(paths.reportsDir, 'load-report.json')}`);
    const { monitoring } = topology;
    if (monitoring.enabled) console.log(`prometheus:  http://127.0.0.1:${monitoring.prometheusPort}/targets`);
    if (monitoring.enabled && monitoring.grafana) console.log(`grafana:     http://127.0.0.1:${monitoring.grafanaPort}/d/ws-notifications`);
  }
  return status;
}

try {
  process.exitCode = main(process.argv[2]);
} catch (error) {
  if (error instanceof ConfigError || error instanceof PreflightError) {
    console.error(`\n${error.message}`);
    process.exitCode = 1;
  } else {
    throw error;
  }
}
