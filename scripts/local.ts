/**
 * `npm run local`: the whole system on loopback with real processes (nginx with the rendered
 * config and TLS, N server replicas, the broker), then the load client through it, and a clean
 * teardown. The parts live in local/: flags (cli.ts), processes (run.ts), the client (client.ts).
 */
import { proxyNames, type Topology } from '../app/src/topology';
import { EXIT, runEntryPoint } from '../app/src/shared/exit';
import { localCommand, missingTool, planLocalRun, type LocalFlags, type LocalPlan } from '../local/cli';
import { CLIENT_ROLE, describeRun, driveLoad } from '../local/client';
import { createLab, reapDeadLabs, type NetnsLab } from '../local/netns';
import { nginxVersion, startLocalRun } from '../local/run';
import { stopOnSignals } from '../local/signals';

async function main(): Promise<number> {
  const flags = localCommand().parse().opts<LocalFlags>();
  const version = nginxVersion();
  const missing = missingTool(flags, version);
  if (missing) {
    console.error(missing);
    return EXIT.failed;
  }
  const plan = planLocalRun(flags, version!);
  const stopping = stopOnSignals();
  // The HA pair's namespaces and bridge: removed on every way out (a crash's by the next start).
  const lab = plan.topology.proxy.ha.enabled ? openLab(plan.topology) : undefined;
  try {
    return await run(plan, flags, version!, stopping, lab);
  } finally {
    lab?.teardown();
  }
}

function openLab(topology: Topology): NetnsLab {
  const reaped = reapDeadLabs();
  if (reaped.length) console.error(`removed what dead runs left: ${reaped.join(', ')}`);
  const lab = createLab([...proxyNames(topology.proxy), CLIENT_ROLE]);
  process.on('exit', () => lab.teardown());
  return lab;
}

async function run(plan: LocalPlan, flags: LocalFlags, version: string, stopping: AbortSignal, lab?: NetnsLab): Promise<number> {
  const { topology } = plan;
  const pair = lab ? ` ×${topology.proxy.ha.proxies} (keepalived pair, virtual address ${topology.proxy.ha.virtualAddress})` : '';
  const spread = topology.load.sourceAddresses.length;
  const strategy = topology.proxy.balancing.strategy;
  const across = spread ? `, client spread over ${spread} source addresses` : '';
  console.log(`starting nginx ${version}${pair} and ${topology.replicas} replica(s), strategy ${strategy}${across}`);
  const local = await startLocalRun(topology, {
    monitoring: Boolean(flags.monitoring),
    lab,
    tokenTtlMs: plan.auth?.tokenTtlMs,
    tokenVia: plan.auth?.tokenVia,
  });
  if (stopping.aborted) {
    await local.stop();
    return EXIT.interrupted;
  }
  const lingering = plan.lingerMs > 0 ? `stays up ${flags.linger} after the load` : 'stops with the load; --linger 10m keeps it up';
  for (const line of describeRun(local, lab, lingering)) console.log(line);
  const code = await driveLoad(local, plan, flags, stopping, lab);
  await local.stop({ keepLogs: Boolean(flags.keepLogs) });
  if (flags.keepLogs) console.log(`logs: ${local.runtimeDir}`);
  const monitoring = local.monitoring ? ', Prometheus, the exporter' : '';
  console.log(`stopped nginx${monitoring} and ${topology.replicas} replica(s); client exit code ${code}`);
  return code;
}

runEntryPoint(main);
