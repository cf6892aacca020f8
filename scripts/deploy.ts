/**
 * `npm run deploy` / `npm run destroy`: checks what cdktf needs (Docker engine, terraform, the
 * provider) and fails fast with an actionable message, then hands over to `cdktf deploy|destroy`.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Topology } from '../app/src/topology';
import { deploymentTopology } from '../deployment';
import { EXIT, runEntryPoint } from '../app/src/shared/exit';
import { ensureTopologyCertificates } from '../certs/generate';
import { ensureServiceSecrets } from '../certs/secrets';
import { installPage } from '../web/build';
import { projectPaths } from '../stacks/paths';
import Docker from 'dockerode';
import { jobLimitSeconds, REPORT_FILE } from '../components/load-client';
import { LOAD_JOB_NAME } from '../stacks/load-client-job';
import { waitForJob } from '../control/swarm-job';
import { dashboardUrl } from '../monitoring/grafana/dashboard';
import { checkDocker, checkProvider, checkTerraform, PreflightError } from './preflight';

const ROOT = resolve(__dirname, '..');

function cdktf(args: string[]): number {
  const r = spawnSync('npx', ['cdktf', ...args], { cwd: ROOT, stdio: 'inherit', env: { ...process.env, CHECKPOINT_DISABLE: '1' } });
  return r.status ?? 1;
}

function main(action: string | undefined): number | Promise<number> {
  if (action !== 'deploy' && action !== 'destroy') {
    console.error('usage: tsx scripts/deploy.ts deploy|destroy');
    return EXIT.config;
  }
  // Validate first: an invalid topology is refused before anything is touched.
  const topology = deploymentTopology(process.env);
  const paths = projectPaths(ROOT, topology);

  console.log(`docker engine ${checkDocker()}`);
  console.log(checkTerraform());

  if (action === 'deploy') {
    const { outcome } = ensureTopologyCertificates(topology, ROOT);
    console.log(`certificates ${outcome} in ${paths.certsDir}`);
    ensureServiceSecrets(topology, paths.secretsDir);
    console.log(`broker and IdP secrets in ${paths.secretsDir}`);
    if (topology.proxy.page.enabled) {
      installPage(paths.pageDir);
      console.log(`notification page in ${paths.pageDir}`);
    }
    mkdirSync(paths.reportsDir, { recursive: true });
  }

  if (cdktf(['synth']) !== 0) return 1;
  checkProvider(join(ROOT, 'cdktf.out', 'stacks', topology.name));

  const status = cdktf([action, '--auto-approve']);
  if (status === 0 && action === 'destroy') rmSync(paths.deployDir, { recursive: true, force: true });
  if (status === 0 && action === 'deploy' && topology.target === 'swarm') return swarmJob(topology, paths.reportsDir);
  if (status === 0 && action === 'deploy') {
    console.log(`\nload report: ${join(paths.reportsDir, REPORT_FILE)}`);
    const { monitoring } = topology;
    if (monitoring.enabled) console.log(`prometheus:  http://127.0.0.1:${monitoring.prometheusPort}/targets`);
    if (monitoring.enabled && monitoring.grafana) console.log(`grafana:     ${dashboardUrl(monitoring.grafanaPort)}`);
  }
  return status;
}

/**
 * The swarm target: the load job is a one-shot service, which an apply does not wait for. Waits
 * for its task (on a manager, where its report is written) and takes its exit code as the
 * deploy's verdict, as the engine target's postcondition does.
 */
async function swarmJob(topology: Topology, reportsDir: string): Promise<number> {
  const outcome = await waitForJob(new Docker(), LOAD_JOB_NAME, jobLimitSeconds(topology.load) * 1000 + 60_000, (state) =>
    console.log(`load job: ${state}`),
  );
  console.log(`\nload job ${outcome.state}, exit code ${outcome.exitCode ?? 'none'}${outcome.message ? ` (${outcome.message})` : ''}`);
  console.log(`load report (on the manager that ran it): ${join(reportsDir, REPORT_FILE)}`);
  if (topology.monitoring.enabled) console.log(`prometheus:  http://<a manager>:${topology.monitoring.prometheusPort}/targets`);
  return outcome.state === 'complete' && outcome.exitCode === 0 ? EXIT.ok : EXIT.failed;
}

runEntryPoint(() => main(process.argv[2]), { expected: [PreflightError] });
