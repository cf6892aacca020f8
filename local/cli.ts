/**
 * The local runner's command line (`npm run local`): its flags, the tools they need, and the
 * topology they describe. The load flags go through the load client's own parsers and rules
 * (applyProfileFlags), so both CLIs read `--duration 2m` the same way.
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { defineTopology, STRATEGIES, withoutAuth, type Strategy, type Topology, type TopologyInput } from '../app/src/topology';
import { ConfigError } from '../app/src/shared/errors';
import { DEFAULT_STAGE, DEFAULT_TOKEN_TTL_MS, DEFAULT_TOKEN_VIA, loadTokensSchema, type TokenVia } from '../app/src/shared/profile';
import {
  applyProfileFlags,
  durationFlag,
  numberFlag,
  ONE_ADDRESS_LIMIT,
  parseSourceAddresses,
  PROTOCOL_OPTION,
  sourceAddressesNeeded,
  type ProfileFlags,
} from '../app/src/client/options';
import { checkFaults, FAULT_KINDS, parseFault, type FaultSpec } from './faults';
import { haClientWorkers } from './ha';
import { monitoringTools } from './run';
import { LAB_NETWORK, netnsUnavailable } from './netns';

/** What errors about the flags are called. */
const SOURCE = 'local options';

type LoadFlags = Pick<
  ProfileFlags,
  'connections' | 'duration' | 'rampRate' | 'topics' | 'publishRate' | 'workers' | 'sourceAddresses' | 'acceptUntrustworthy'
>;

/** The runner's flags as commander gives them. */
export interface LocalFlags extends LoadFlags {
  replicas?: string;
  strategy: Strategy;
  report: string;
  html: string;
  keepLogs?: boolean;
  fault: string[];
  /** Unset: the topology's default (on); false with --no-broker. */
  broker?: boolean;
  apiKeyFile?: string;
  publishViaProxy?: boolean;
  publishApi?: boolean;
  ha?: boolean;
  monitoring?: boolean;
  linger?: string;
  auth?: boolean;
  tokenTtl: string;
  tokenIn: TokenVia;
}

export function localCommand(): Command {
  return new Command('local')
    .description('Run the system on loopback (real nginx + TLS, N server processes) and put the load client through it.')
    .option('--replicas <n>', 'server replicas (default: REPLICAS, else 3)')
    .addOption(new Option('--strategy <name>', 'balancing strategy').choices([...STRATEGIES]).default('least_conn'))
    .option('--connections <n>', 'concurrent connections to ramp to', '1000')
    .option('--duration <d>', 'load duration including the ramp (30s, 2m, or plain seconds)', '20s')
    .option('--ramp-rate <n>', `connections opened per second (default: the profile's, ${DEFAULT_STAGE.rampRate})`)
    .option('--topics <n>', "topics the connections subscribe to (round-robin; default: the profile's, 10)")
    .option('--publish-rate <n>', "publications per second across all topics (default: the profile's, 2)")
    .addOption(PROTOCOL_OPTION())
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
      '--publish-api',
      "the load client publishes as a backend does: POST /api/publish through nginx's TLS port with the --api-key-file key; without --auth, clients may not publish over the WebSocket",
    )
    .option(
      '--ha',
      'two nginx proxies behind a keepalived virtual address, each in a network namespace of its own, the client in a third (Linux, root; Debian: keepalived)',
    )
    .option('--monitoring', 'also run Prometheus and the nginx exporter (Debian: prometheus, prometheus-nginx-exporter) and scrape the run')
    .option(
      '--auth',
      'require tokens: run the development OpenID provider (oidc-provider), give every virtual user its own token and refresh it before expiry',
    )
    .option('--no-auth', 'no tokens (the default, except for `npm start`, which passes --auth: `npm start -- --no-auth`)')
    .option(
      '--token-ttl <d>',
      'with --auth: the lifetime of each token (refreshed in-band when the server warns)',
      `${DEFAULT_TOKEN_TTL_MS / 60_000}m`,
    )
    .addOption(
      new Option(
        '--token-in <where>',
        "with --auth: the upgrade's Authorization header (hello follows the 101), or the first message (as a browser sends it)",
      )
        .choices(loadTokensSchema.shape.via.unwrap().options)
        .default(DEFAULT_TOKEN_VIA),
    )
    .option('--linger <d>', 'keep everything running this long after the load ends (e.g. 10m), to look at Prometheus; Ctrl-C ends it');
}

/** What the flags need that this machine lacks, said with how to install it; undefined when nothing is missing. */
export function missingTool(o: LocalFlags, nginxVersion: string | undefined): string | undefined {
  if (!nginxVersion)
    return 'nginx is not installed. On Debian/Ubuntu: sudo apt-get install -y nginx-light (or run `npm start`, which installs it as root).';
  if (o.ha) {
    const why =
      netnsUnavailable() ??
      (spawnSync('keepalived', ['--version']).error ? 'keepalived is not installed (apt-get install keepalived)' : undefined);
    if (why) return `--ha: ${why}`;
  }
  const missing = o.monitoring ? monitoringTools().missing : undefined;
  return missing && `--monitoring: ${missing}`;
}

/** The run the flags describe: its topology, its faults, and how long it stays up after the load. */
export interface LocalPlan {
  topology: Topology;
  faults: FaultSpec[];
  lingerMs: number;
  /** With --auth: the tokens' lifetime (the provider and the auth section are set when the run starts: local/idp.ts). */
  auth?: { tokenTtlMs: number; tokenVia: TokenVia };
}

/** The flags as a validated topology and faults; every problem names its flag (ConfigError). */
export function planLocalRun(o: LocalFlags, nginxVersion: string, env: NodeJS.ProcessEnv = process.env): LocalPlan {
  // An explicit --replicas wins over REPLICAS, which wins over the default.
  const replicasFlag = numberFlag('--replicas', o.replicas, SOURCE);
  const topologyEnv = replicasFlag === undefined ? env : { ...env, REPLICAS: undefined };
  const { replicas } = defineTopology(replicasFlag !== undefined ? { replicas: replicasFlag } : {}, topologyEnv);
  const connections = numberFlag('--connections', o.connections, SOURCE)!;
  if (o.ha) refuseWithHa(o, connections);
  if ((o.publishApi || o.publishViaProxy) && !o.apiKeyFile) {
    const flag = o.publishApi ? '--publish-api' : '--publish-via-proxy';
    throw new ConfigError(SOURCE, [{ field: flag, rule: 'needs --api-key-file (the publish API is off without a key)' }]);
  }
  const input: Partial<TopologyInput> = {
    replicas,
    // Unset: the topology's default (the broker on).
    ...(o.broker !== undefined ? { broker: { enabled: o.broker } } : {}),
    ...(o.apiKeyFile ? { server: { apiKeyFile: resolve(o.apiKeyFile) } } : {}),
    proxy: {
      nginxVersion,
      // nginx sized for the run (the schema derives the worker count from it).
      targetConnections: Math.max(10_000, connections),
      balancing: { strategy: o.strategy, hashKey: o.strategy === 'hash' ? '$arg_client' : undefined },
      publishApi: Boolean(o.publishViaProxy || o.publishApi),
      ...(o.ha ? { ha: { enabled: true, virtualAddress: LAB_NETWORK.virtualAddress } } : {}),
    },
    ...(o.ha ? { network: { subnet: LAB_NETWORK.subnet, ipRange: LAB_NETWORK.ipRange } } : {}),
    load: { ...loadSection(o, replicas, connections), ...(o.publishApi ? { publishApi: { keyFile: resolve(o.apiKeyFile!) } } : {}) },
  };
  // --auth: the topology's default (jwt against the development IdP the run starts). Without it, a
  // trusted loopback, where clients publish over the WebSocket unless the load publishes through the API.
  const open = o.publishApi ? { ...input, auth: { mode: 'none' } as TopologyInput['auth'] } : withoutAuth(input);
  const topology = defineTopology(o.auth ? input : open, topologyEnv);
  const auth = o.auth ? { tokenTtlMs: tokenTtlOf(o.tokenTtl), tokenVia: o.tokenIn } : undefined;
  return { topology, faults: faultsOf(o, topology, Boolean(auth)), lingerMs: durationFlag('--linger', o.linger, SOURCE) ?? 0, auth };
}

/** --token-ttl: at least 5 s, so a token outlives its own refresh. */
function tokenTtlOf(text: string): number {
  const ms = durationFlag('--token-ttl', text, SOURCE)!;
  if (ms < 5_000 || ms > 86_400_000) throw new ConfigError(SOURCE, [{ field: '--token-ttl', rule: 'must be from 5s to 24h' }]);
  return ms;
}

/** The client's namespace has one address with --ha: what needs more, or another place, is refused. */
function refuseWithHa(o: LocalFlags, connections: number): void {
  const problems = [
    connections > ONE_ADDRESS_LIMIT
      ? { field: '--connections', rule: `at most ${ONE_ADDRESS_LIMIT} with --ha (the client's namespace has one address)` }
      : undefined,
    o.sourceAddresses
      ? { field: '--source-addresses', rule: 'not with --ha (the client runs in its own namespace, with its own address)' }
      : undefined,
    o.monitoring ? { field: '--monitoring', rule: "not with --ha yet (Prometheus would need the proxies' namespaces)" } : undefined,
    o.strategy === 'ip_hash' ? { field: '--strategy', rule: 'ip_hash needs several client addresses; --ha has one' } : undefined,
  ].filter((p) => p !== undefined);
  if (problems.length) throw new ConfigError(SOURCE, problems);
}

/** The topology's load section: the load flags as the load client reads them, and what the runner adds. */
function loadSection(o: LocalFlags, replicas: number, connections: number): Record<string, unknown> {
  const { sourceAddresses: _, ...flags } = o;
  const load = applyProfileFlags({}, flags, SOURCE);
  if (o.workers === undefined && o.ha) load.workers = haClientWorkers(connections);
  if (o.strategy === 'hash') load.keyParam = 'client';
  load.sourceAddresses = sourceAddressesOf(o, replicas, connections);
  return load;
}

/** Where the client connects from: ip_hash needs several /24s to spread, and large runs several addresses. */
function sourceAddressesOf(o: LocalFlags, replicas: number, connections: number): string[] {
  if (o.ha) return [];
  if (o.sourceAddresses) return parseSourceAddresses(o.sourceAddresses);
  const needed = sourceAddressesNeeded(connections);
  const count = o.strategy === 'ip_hash' ? Math.min(254, Math.max(2, replicas * 2, needed)) : needed;
  return count ? parseSourceAddresses(String(count)) : [];
}

/** The --fault flags, checked against what the topology runs. */
function faultsOf(o: LocalFlags, topology: Topology, auth: boolean): FaultSpec[] {
  const faults = o.fault.map((text) => {
    try {
      return parseFault(text);
    } catch (error) {
      throw new ConfigError(SOURCE, [{ field: '--fault', rule: (error as Error).message }]);
    }
  });
  const problem = checkFaults(faults, {
    replicas: topology.replicas,
    durationMs: durationFlag('--duration', o.duration, SOURCE)!,
    broker: topology.broker.enabled,
    auth,
    connections: numberFlag('--connections', o.connections, SOURCE)!,
    proxies: topology.proxy.ha.enabled ? topology.proxy.ha.proxies : undefined,
  });
  if (problem) throw new ConfigError(SOURCE, [{ field: '--fault', rule: problem }]);
  return faults;
}
