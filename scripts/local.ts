/**
 * `npm run local`: the whole system on loopback with real processes — nginx with the rendered
 * config (TLS), N server replicas, then the load client — and a clean teardown.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { defineTopology, STRATEGIES, type Strategy } from '../app/src/topology';
import { ConfigError } from '../app/src/shared/errors';
import { EXIT, runEntryPoint } from '../app/src/shared/exit';
import { parseDuration } from '../app/src/shared/duration';
import { LOAD_ENV } from '../app/src/shared/load-env';
import { DEFAULT_STAGE, hardTimeLimitMs, singleStage } from '../app/src/shared/profile';
import { ONE_ADDRESS_LIMIT, parseSourceAddresses, sourceAddressesNeeded } from '../app/src/client/options';
import { CLIENT_COMMAND, monitoringTools, nginxVersion, startLocalTopology } from '../local/topology';
import { checkFaults, FAULT_KINDS, parseFault, scheduleFaults, type FaultSpec } from '../local/faults';
import { tellFault } from '../app/src/client/faults';
import { NGINX_STATUS_PATH, nginxErrorLog } from '../nginx/render';
import { conntrackFill, nginxLimitsHit } from '../local/limits';
import { PUBLISH_API_PATH } from '../app/src/shared/protocol';
import { haClientWorkers } from '../local/ha';
import { GENERATOR_NICE, prioritizeGenerator } from '../local/priority';
import { createLab, inNamespace, LAB_NETWORK, netnsUnavailable, reapDeadLabs, type NetnsLab } from '../local/netns';
import { proxyNames } from '../app/src/topology';

const program = new Command('local')
  .description('Run the system on loopback (real nginx + TLS, N server processes) and put the load client through it.')
  .option('--replicas <n>', 'server replicas (default: REPLICAS, else 3)')
  .addOption(new Option('--strategy <name>', 'balancing strategy').choices([...STRATEGIES]).default('least_conn'))
  .option('--connections <n>', 'concurrent connections to ramp to', '1000')
  .option('--duration <d>', 'load duration including the ramp (30s, 2m, or plain seconds)', '20s')
  .option('--ramp-rate <n>', `connections opened per second (default: the profile's, ${DEFAULT_STAGE.rampRate})`)
  .option('--topics <n>', "topics the connections subscribe to (round-robin; default: the profile's, 10)")
  .option('--publish-rate <n>', "publications per second across all topics (default: the profile's, 2)")
  .option('--workers <n>', "load client processes (default: the profile's: one per 15,000 connections)")
  .option('--source-addresses <n|list>', 'spread the client over loopback addresses (default for ip_hash: 2 per replica)')
  .option('--report <file>', 'JSON report', 'reports/local-report.json')
  .option('--html <file>', 'HTML report', 'reports/local-report.html')
  .option('--keep-logs', 'keep the logs of nginx, the replicas (and Prometheus): the runtime directory is printed')
  .option(
    '--fault <kind[:n]@time>',
    `inject a fault at a time after the load starts, for real (repeatable): ${FAULT_KINDS.join(', ')}; e.g. reload-proxy@20s, kill-replica:1@40s`,
    (value: string, list: string[]) => [...list, value],
    [] as string[],
  )
  .option(
    '--broker',
    'deliver notifications through a NATS JetStream broker (Debian: nats-server): every subscriber gets every notification, whatever replica it is on (the default)',
  )
  .option('--no-broker', "per-replica fan-out instead: a publication reaches only its own replica's subscribers (no nats-server needed)")
  .option('--api-key-file <file>', 'turn on the publish API (POST /api/publish on each replica) with the bearer key in this file')
  .option(
    '--accept-untrustworthy',
    'judge the run by its thresholds alone even when the load client was the bottleneck (otherwise INCONCLUSIVE, exit 4)',
  )
  .option('--publish-via-proxy', "also route the publish API through nginx's TLS port (needs --api-key-file)")
  .option(
    '--ha',
    'two nginx proxies behind a keepalived virtual address, each in a network namespace of its own, the client in a third (Linux, root; Debian: keepalived)',
  )
  .option('--monitoring', 'also run Prometheus and the nginx exporter (Debian: prometheus, prometheus-nginx-exporter) and scrape the run')
  .option('--linger <d>', 'keep everything running this long after the load ends (e.g. 10m), to look at Prometheus; Ctrl-C ends it')
  .parse();

async function main(): Promise<number> {
  const o = program.opts();
  const version = nginxVersion();
  if (!version) {
    console.error(
      'nginx is not installed. On Debian/Ubuntu: sudo apt-get install -y nginx-light (or run `npm start`, which installs it as root).',
    );
    return EXIT.failed;
  }
  if (o.ha) {
    const why =
      netnsUnavailable() ??
      (spawnSync('keepalived', ['--version']).error ? 'keepalived is not installed (apt-get install keepalived)' : undefined);
    if (why) {
      console.error(`--ha: ${why}`);
      return EXIT.failed;
    }
  }
  const missing = o.monitoring ? monitoringTools().missing : undefined;
  if (missing) {
    console.error(`--monitoring: ${missing}`);
    return EXIT.failed;
  }
  const strategy = o.strategy as Strategy;
  const whole = (flag: string, text: string | undefined) => {
    if (text === undefined) return undefined;
    if (!/^\d+$/.test(text)) throw new ConfigError('local options', [{ field: flag, rule: `"${text}" is not a whole number` }]);
    return Number(text);
  };
  // An explicit --replicas wins over REPLICAS, which wins over the default.
  const replicasFlag = whole('--replicas', o.replicas);
  const env = replicasFlag === undefined ? process.env : { ...process.env, REPLICAS: undefined };
  const connections = whole('--connections', o.connections)!;
  const number = (flag: string, text: string) => {
    if (!/^\d+(\.\d+)?$/.test(text)) throw new ConfigError('local options', [{ field: flag, rule: `"${text}" is not a number` }]);
    return Number(text);
  };
  const duration = (flag: string, text: string) => {
    try {
      return parseDuration(text);
    } catch (error) {
      throw new ConfigError('local options', [{ field: flag, rule: (error as Error).message }]);
    }
  };
  const durationMs = duration('--duration', o.duration);
  const faults: FaultSpec[] = (o.fault as string[]).map((text) => {
    try {
      return parseFault(text);
    } catch (error) {
      throw new ConfigError('local options', [{ field: '--fault', rule: (error as Error).message }]);
    }
  });
  const lingerMs = o.linger === undefined ? 0 : duration('--linger', o.linger);
  const rampRate = o.rampRate !== undefined ? Math.max(1, number('--ramp-rate', o.rampRate)) : DEFAULT_STAGE.rampRate;
  // The replica count as the topology validates it (flag, else REPLICAS, else the default).
  const { replicas } = defineTopology(replicasFlag !== undefined ? { replicas: replicasFlag } : {}, env);
  if (o.ha) {
    // The client's namespace has one address: its ports to the virtual address bound the run.
    const problems = [
      connections > ONE_ADDRESS_LIMIT
        ? { field: '--connections', rule: `at most ${ONE_ADDRESS_LIMIT} with --ha (the client's namespace has one address)` }
        : undefined,
      o.sourceAddresses
        ? { field: '--source-addresses', rule: 'not with --ha (the client runs in its own namespace, with its own address)' }
        : undefined,
      o.monitoring ? { field: '--monitoring', rule: "not with --ha yet (Prometheus would need the proxies' namespaces)" } : undefined,
      strategy === 'ip_hash' ? { field: '--strategy', rule: 'ip_hash needs several client addresses; --ha has one' } : undefined,
    ].filter((p) => p !== undefined);
    if (problems.length) throw new ConfigError('local options', problems);
  }
  // ip_hash needs several /24s to spread; large runs need several addresses anyway.
  const needed = sourceAddressesNeeded(connections);
  const addressCount = strategy === 'ip_hash' ? Math.min(254, Math.max(2, replicas * 2, needed)) : needed;
  const sourceAddresses = o.ha
    ? []
    : o.sourceAddresses
      ? parseSourceAddresses(o.sourceAddresses)
      : addressCount
        ? parseSourceAddresses(String(addressCount))
        : [];
  // nginx sized for the run (the schema derives the worker count: two descriptors per connection, under the per-process ceiling).
  const targetConnections = Math.max(10_000, connections);

  const topology = defineTopology(
    {
      replicas,
      // Unset: the topology's default (the broker on).
      ...(o.broker !== undefined ? { broker: { enabled: o.broker as boolean } } : {}),
      ...(o.apiKeyFile ? { server: { apiKeyFile: resolve(o.apiKeyFile) } } : {}),
      proxy: {
        nginxVersion: version,
        targetConnections,
        balancing: { strategy, hashKey: strategy === 'hash' ? '$arg_client' : undefined },
        publishApi: Boolean(o.publishViaProxy),
        ...(o.ha ? { ha: { enabled: true, virtualAddress: LAB_NETWORK.virtualAddress } } : {}),
      },
      ...(o.ha ? { network: { subnet: LAB_NETWORK.subnet, ipRange: LAB_NETWORK.ipRange } } : {}),
      load: {
        stages: [singleStage(connections, durationMs, rampRate)],
        ...(o.topics !== undefined ? { topics: whole('--topics', o.topics) } : {}),
        ...(o.publishRate !== undefined ? { publishRate: number('--publish-rate', o.publishRate) } : {}),
        ...(o.workers !== undefined ? { workers: whole('--workers', o.workers) } : o.ha ? { workers: haClientWorkers(connections) } : {}),
        keyParam: strategy === 'hash' ? 'client' : undefined,
        sourceAddresses,
        ...(o.acceptUntrustworthy ? { acceptUntrustworthy: true } : {}),
        maxDurationMs: hardTimeLimitMs(durationMs),
      },
    },
    env,
  );

  const faultProblem = checkFaults(faults, {
    replicas: topology.replicas,
    durationMs,
    broker: topology.broker.enabled,
    proxies: topology.proxy.ha.enabled ? topology.proxy.ha.proxies : undefined,
  });
  if (faultProblem) throw new ConfigError('local options', [{ field: '--fault', rule: faultProblem }]);

  // SIGINT (Ctrl-C), SIGTERM (timeout, CI runners, supervisors) and SIGHUP (a closed terminal)
  // all end the run the same way: the client stops and writes its report, then everything is
  // torn down. The client runs in its own process group, so it hears this once, from us.
  const stopping = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping.signal.aborted) return;
    console.error(`\n${signal}: stopping the run`);
    stopping.abort();
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
  // npm does not pass SIGTERM on to its script: it exits and leaves it running. So the launcher
  // going away (we are re-parented) stops the run too, like a hangup.
  const launcher = process.ppid;
  setInterval(() => process.ppid !== launcher && onSignal('SIGHUP'), 500).unref();

  // The HA pair's namespaces and bridge: made here, removed on every way out (a crash's are
  // removed by the next start).
  let lab: NetnsLab | undefined;
  if (topology.proxy.ha.enabled) {
    const reaped = reapDeadLabs();
    if (reaped.length) console.error(`removed what dead runs left: ${reaped.join(', ')}`);
    lab = createLab([...proxyNames(topology.proxy), CLIENT_ROLE]);
    process.on('exit', () => lab?.teardown());
  }
  try {
    return await run(topology, { version, strategy, sourceAddresses, faults, lingerMs, stopping, lab, o });
  } finally {
    lab?.teardown();
  }
}

/** The lab role the load client runs in, with --ha. */
const CLIENT_ROLE = 'client';

async function run(
  topology: ReturnType<typeof defineTopology>,
  {
    version,
    strategy,
    sourceAddresses,
    faults,
    lingerMs,
    stopping,
    lab,
    o,
  }: {
    version: string;
    strategy: Strategy;
    sourceAddresses: string[];
    faults: FaultSpec[];
    lingerMs: number;
    stopping: AbortController;
    lab?: NetnsLab;
    o: ReturnType<typeof program.opts>;
  },
): Promise<number> {
  console.log(
    `starting nginx ${version}${lab ? ` ×${topology.proxy.ha.proxies} (keepalived pair, virtual address ${topology.proxy.ha.virtualAddress})` : ''} and ${topology.replicas} replica(s), strategy ${strategy}${sourceAddresses.length ? `, client spread over ${sourceAddresses.length} source addresses` : ''}`,
  );
  const local = await startLocalTopology(topology, { monitoring: Boolean(o.monitoring), lab });
  if (stopping.signal.aborted) {
    await local.stop();
    return EXIT.interrupted;
  }
  if (local.ha) {
    for (const p of local.ha.proxies)
      console.log(
        `proxy ${p.name} in namespace ${p.namespace} at ${p.address}: ${p.state() ?? 'starting'}${local.ha.holder() === p ? `, holds ${local.ha.virtualAddress}` : ''}`,
      );
    console.log(`clients use ${local.url} from namespace ${lab!.namespaces[CLIENT_ROLE].name}`);
  } else
    console.log(
      `proxy ${local.url} (http ${local.httpPort} redirects; stub_status http://127.0.0.1:${local.httpPort}${NGINX_STATUS_PATH})`,
    );
  console.log(`runtime ${local.runtimeDir} (logs; removed at the end unless --keep-logs)`);
  if (local.broker) console.log(`broker ${local.broker.url} (nats-server with JetStream; every replica delivers every notification)`);
  if (topology.server.apiKeyFile)
    for (const r of local.replicas) console.log(`publish API ${r.id}: http://127.0.0.1:${r.port}${PUBLISH_API_PATH}`);
  if (topology.proxy.publishApi)
    console.log(`publish API through nginx: ${new URL(PUBLISH_API_PATH, local.url.replace(/^wss:/, 'https:'))}`);
  if (local.monitoring) {
    const stays = lingerMs > 0 ? `stays up ${o.linger} after the load` : 'stops with the load; --linger 10m keeps it up';
    console.log(
      `prometheus ${local.monitoring.prometheusUrl} (graph: ${local.monitoring.prometheusUrl}/graph, targets: ${local.monitoring.prometheusUrl}/targets; ${stays})`,
    );
  }

  // The client is the same program the job container runs, given the topology's load profile.
  const metricsArgs = local.monitoring ? ['--metrics-port', String(local.monitoring.loadMetricsPort)] : [];
  // An IPC channel tells the client of the faults we inject (it marks them and attributes closes).
  // With --ha the client runs in its own namespace and reaches the pair through the bridge.
  const clientArgv = [
    process.execPath,
    ...CLIENT_COMMAND,
    local.url,
    '--ca',
    local.caFile,
    '--report',
    resolve(o.report),
    '--html',
    resolve(o.html),
    ...metricsArgs,
  ];
  const [command, ...args] = lab ? inNamespace(lab.namespaces[CLIENT_ROLE].name, clientArgv) : clientArgv;
  const client = spawn(command, args, {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    detached: true,
    env: { ...process.env, ...local.mark, [LOAD_ENV.profile]: JSON.stringify(topology.load) },
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
  const exited = new Promise<number>((r) => client.on('exit', (c, signal) => r(c ?? (signal ? EXIT.interrupted : EXIT.failed))));
  const stopClient = () => client.exitCode === null && client.kill('SIGINT');
  stopping.signal.addEventListener('abort', stopClient);
  // The client hears of each fault and answers before the fault acts, so it attributes the closes.
  const scheduled = scheduleFaults(
    local,
    faults,
    (event) => tellFault(client, event),
    (line) => console.error(line),
  );
  const code = await exited;
  scheduled.cancel();
  stopping.signal.removeEventListener('abort', stopClient);

  if (lingerMs > 0 && !stopping.signal.aborted) {
    console.log(`load finished (exit code ${code}); everything stays up for ${o.linger}: Ctrl-C (or SIGTERM) stops it sooner`);
    await new Promise<void>((r) => {
      const timer = setTimeout(r, lingerMs);
      stopping.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        r();
      });
    });
  }

  // Limits outside the client that a large run can hit, from their own evidence.
  const errorLogs = (local.ha ? local.ha.proxies.map((p) => p.dir) : [local.runtimeDir]).map(nginxErrorLog);
  const nginxHits = nginxLimitsHit(errorLogs.map((f) => (existsSync(f) ? readFileSync(f, 'utf8') : '')).join('\n'));
  if (Object.keys(nginxHits).length)
    console.log(
      `nginx error log: ${Object.entries(nginxHits)
        .map(([k, v]) => `${k} ×${v}`)
        .join('; ')}`,
    );
  const conntrack = conntrackFill();
  if (conntrack && conntrack.count >= 0.9 * conntrack.max)
    console.log(`conntrack table ${conntrack.count} of ${conntrack.max}: nearly full (new connections are dropped when it is)`);

  await local.stop({ keepLogs: Boolean(o.keepLogs) });
  if (o.keepLogs) console.log(`logs: ${local.runtimeDir}`);
  console.log(
    `stopped nginx${local.monitoring ? ', Prometheus, the exporter' : ''} and ${topology.replicas} replica(s); client exit code ${code}`,
  );
  // A fault that could not be injected makes the run say nothing about it.
  return scheduled.failed() && code === EXIT.ok ? EXIT.failed : code;
}

runEntryPoint(main);
