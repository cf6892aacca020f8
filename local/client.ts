/**
 * The load client against a local run (`npm run local`): the same program the job container
 * runs, given the topology's load profile, with the faults injected on schedule.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { tellFault } from '../app/src/client/faults';
import { EXIT } from '../app/src/shared/exit';
import { LOAD_ENV } from '../app/src/shared/load-env';
import { PUBLISH_API_PATH } from '../app/src/shared/protocol';
import { NGINX_STATUS_PATH } from '../nginx/render';
import type { LocalFlags, LocalPlan } from './cli';
import { scheduleFaults } from './faults';
import { limitsHitReport } from './limits';
import { inNamespace, type NetnsLab } from './netns';
import { GENERATOR_NICE, prioritizeGenerator } from './priority';
import type { LocalRun } from './run';
import { CENTRIFUGE_PATH } from '../app/src/shared/centrifuge';

/** The lab role the load client runs in, with --ha. */
export const CLIENT_ROLE = 'client';

/** Where everything is, printed before the load starts. */
export function describeRun(local: LocalRun, lab: NetnsLab | undefined, lingering: string): string[] {
  const { topology } = local;
  const lines: string[] = [];
  if (local.ha) {
    for (const p of local.ha.proxies) {
      const holds = local.ha.holder() === p ? `, holds ${local.ha.virtualAddress}` : '';
      lines.push(`proxy ${p.name} in namespace ${p.namespace} at ${p.address}: ${p.state() ?? 'starting'}${holds}`);
    }
    lines.push(`clients use ${local.url} from namespace ${lab!.namespaces[CLIENT_ROLE].name}`);
  } else
    lines.push(`proxy ${local.url} (http ${local.httpPort} redirects; stub_status http://127.0.0.1:${local.httpPort}${NGINX_STATUS_PATH})`);
  if (!local.ha && topology.proxy.page.enabled) {
    const origin = `https://localhost:${local.httpsPort}`;
    const signIn = local.idp ? '; sign in with any name' : '';
    lines.push(`page ${origin}/ (live notifications through the centrifuge SDK at ${origin}${CENTRIFUGE_PATH}${signIn})`);
  }
  lines.push(`runtime ${local.runtimeDir} (logs; removed at the end unless --keep-logs)`);
  if (local.idp)
    lines.push(
      `identity provider ${local.idp.issuer} (oidc-provider; discovery ${local.idp.issuer}/.well-known/openid-configuration; clients' secret in ${local.idp.secretFile})`,
    );
  if (local.broker) {
    const users = local.broker.credentials
      ? `; users ${local.broker.credentials.replica.user} and ${local.broker.credentials.backend.user} (password files ${local.broker.credentials.backend.passwordFile.replace(/[^/]+$/, '')}), nobody else`
      : '';
    lines.push(`broker ${local.broker.url} (nats-server with JetStream; every replica delivers every notification${users})`);
  }
  if (topology.server.apiKeyFile)
    for (const r of local.replicas) lines.push(`publish API ${r.id}: http://127.0.0.1:${r.port}${PUBLISH_API_PATH}`);
  if (topology.proxy.publishApi)
    lines.push(`publish API through nginx: ${new URL(PUBLISH_API_PATH, local.url.replace(/^wss:/, 'https:'))}`);
  if (local.monitoring) {
    const url = local.monitoring.prometheusUrl;
    lines.push(`prometheus ${url} (graph: ${url}/graph, targets: ${url}/targets; ${lingering})`);
  }
  return lines;
}

/**
 * Starts the client in its own process group (with --ha, in the lab's client namespace), marked
 * as part of the run and ahead of the system in CPU priority. An IPC channel tells it of the faults.
 */
function startClient(local: LocalRun, flags: LocalFlags, lab: NetnsLab | undefined): ChildProcess {
  const metricsArgs = local.monitoring ? ['--metrics-port', String(local.monitoring.loadMetricsPort)] : [];
  const reports = ['--report', resolve(flags.report), '--html', resolve(flags.html)];
  const argv = [process.execPath, ...local.clientCommand, local.url, '--ca', local.caFile, ...reports, ...metricsArgs];
  const [command, ...args] = lab ? inNamespace(lab.namespaces[CLIENT_ROLE].name, argv) : argv;
  const client = spawn(command, args, {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    detached: true,
    env: { ...process.env, ...local.mark, [LOAD_ENV.profile]: JSON.stringify(local.topology.load) },
  });
  if (client.pid) {
    local.adopt(client.pid);
    const priority = prioritizeGenerator(client.pid);
    console.log(
      'problem' in priority
        ? `load client at normal priority (${priority.problem}): on a busy machine it shares the CPU with the system it measures`
        : `load client at nice ${GENERATOR_NICE}${priority.raised === 'process' ? '' : ', its session too'}: it takes the CPU before the system it measures`,
    );
  }
  return client;
}

/**
 * Runs the load client to its end (or until `stopping` aborts: it is told to stop and writes its
 * report), injecting the plan's faults. Resolves with its exit code; a fault that could not be
 * injected makes the run say nothing about it, so a passing run then fails.
 */
export async function driveLoad(local: LocalRun, plan: LocalPlan, flags: LocalFlags, stopping: AbortSignal, lab?: NetnsLab) {
  const client = startClient(local, flags, lab);
  const exited = new Promise<number>((r) => client.on('exit', (c, signal) => r(c ?? (signal ? EXIT.interrupted : EXIT.failed))));
  const stopClient = () => client.exitCode === null && client.kill('SIGINT');
  stopping.addEventListener('abort', stopClient);
  // The client hears of each fault and answers before the fault acts, so it attributes the closes.
  const log = (line: string) => console.error(line);
  const scheduled = scheduleFaults(local, plan.faults, (event) => tellFault(client, event), log);
  const code = await exited;
  scheduled.cancel();
  stopping.removeEventListener('abort', stopClient);
  if (plan.lingerMs > 0 && !stopping.aborted) {
    console.log(`load finished (exit code ${code}); everything stays up for ${flags.linger}: Ctrl-C (or SIGTERM) stops it sooner`);
    await linger(plan.lingerMs, stopping);
  }
  for (const line of limitsHitReport(local.nginxErrorLogs)) console.log(line);
  return scheduled.failed() && code === EXIT.ok ? EXIT.failed : code;
}

/** Waits `ms`, or until `stopping` aborts. */
function linger(ms: number, stopping: AbortSignal): Promise<void> {
  return new Promise<void>((r) => {
    const timer = setTimeout(r, ms);
    stopping.addEventListener('abort', () => {
      clearTimeout(timer);
      r();
    });
  });
}
