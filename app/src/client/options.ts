import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { ConfigError } from '../shared/errors';
import { parseDuration } from '../shared/duration';
import { LOAD_ENV } from '../shared/load-env';
import {
  DEFAULT_STAGE,
  loadProfileSchema,
  hardTimeLimitMs,
  singleStage,
  WEBHOOK_SOURCE,
  type LoadProfile,
  type LoadProfileInput,
  type Stage,
} from '../shared/profile';
import { parseThreshold, type Threshold } from './thresholds';

export interface LoadOptions {
  url: string;
  ca?: Buffer;
  caPath?: string;
  insecure: boolean;
  profile: LoadProfile;
  thresholds: Threshold[];
  report?: string;
  html?: string;
  /** Serve /metrics on this port while running. */
  metricsPort?: number;
  quiet: boolean;
}

type Env = Record<string, string | undefined>;

function buildCommand(): Command {
  return new Command('load')
    .description(
      'WebSocket load client: ramps connections through stages, sends echoes and publishes, and measures connect time, RTT and push latency.',
    )
    .argument('[url]', `target, ws:// or wss:// (env ${LOAD_ENV.url})`)
    .option('--ca <file>', `CA certificate to verify a wss:// server against (env ${LOAD_ENV.ca})`)
    .option('--insecure', `skip certificate verification (env ${LOAD_ENV.insecure}=1)`)
    .option('--profile <file>', `load profile JSON (env ${LOAD_ENV.profile} holds the JSON itself); flags override it`)
    .option('-c, --connections <n>', 'one stage: ramp to this many connections')
    .option('--ramp-rate <n>', 'connections opened per second while ramping')
    .option('-d, --duration <d>', 'one stage: total time including the ramp (30s, 2m, plain seconds)')
    .option('--senders <fraction>', 'fraction of connections that send echoes and publish (0..1)')
    .option('--rate <n>', 'echo messages per second per sender')
    .addOption(new Option('--arrival <kind>', 'spacing of sends').choices(['poisson', 'fixed']))
    .option('--payload <spec>', 'payload size: N, or MIN-MAX for a uniform distribution; or real ones: github-webhooks:push,issues,...')
    .option('--topics <n>', 'topics to subscribe to (0: none)')
    .option('--publish-rate <n>', 'notifications published per second across all senders')
    .option('--compression', 'offer permessage-deflate')
    .option('--delta', "subscribe asking for fossil deltas (on the server's server.deltaTopics)")
    .addOption(PROTOCOL_OPTION())
    .option('--no-reconnect', 'do not reconnect after a failure or a server close')
    .option(
      '--source-addresses <list>',
      'local addresses to spread connections over: a list (127.0.1.1,127.0.2.1) or a count N (127.0.1.1 … 127.0.N.1)',
    )
    .option('--key-param <name>', "send each client's stable id as this query parameter (for hash balancing)")
    .option('--workers <n>', 'worker processes (0: one per 15,000 connections)')
    .option('--connect-timeout <d>', 'handshake timeout')
    .option('--max-duration <d>', 'hard limit for the whole run')
    .option(
      '-t, --threshold <expr>',
      'pass/fail rule, repeatable: rtt.p99<50, errors==0, closes.unexpected==0',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option('--report <file>', `write the JSON report (env ${LOAD_ENV.report})`)
    .option('--html <file>', `write a self-contained HTML report with charts (env ${LOAD_ENV.html})`)
    .option('--metrics-port <port>', `serve Prometheus /metrics while running (env ${LOAD_ENV.metricsPort})`)
    .option(
      '--accept-untrustworthy',
      'judge by the thresholds alone even when the generator was the bottleneck (otherwise INCONCLUSIVE, exit 4)',
    )
    .option('-q, --quiet', 'no live progress, only the summary')
    .showHelpAfterError();
}

/** A number flag (undefined when not given); the error names the flag, in `source` (the CLI's name). */
export function numberFlag(field: string, text: string | undefined, source = 'load options'): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n)) throw new ConfigError(source, [{ field, rule: `"${text}" is not a number` }]);
  return n;
}

/** A duration flag in ms (30s, 2m, plain seconds; undefined when not given), the same way. */
export function durationFlag(field: string, text: string | undefined, source = 'load options'): number | undefined {
  if (text === undefined) return undefined;
  try {
    return parseDuration(text);
  } catch (error) {
    throw new ConfigError(source, [{ field, rule: (error as Error).message }]);
  }
}

/**
 * One source address reaches one nginx port through at most ~28,000 ephemeral ports
 * (32768–60999), a limit apart from the descriptor ceiling: past 20,000 connections, spread
 * over one address per 15,000.
 */
export const ONE_ADDRESS_LIMIT = 20_000;
const CONNECTIONS_PER_SOURCE_ADDRESS = 15_000;

/** Source addresses a run of this many connections needs (0: the OS picks one). */
export function sourceAddressesNeeded(connections: number): number {
  return connections > ONE_ADDRESS_LIMIT ? Math.ceil(connections / CONNECTIONS_PER_SOURCE_ADDRESS) : 0;
}

/** "4" → 127.0.1.1 … 127.0.4.1 (distinct /24s, so ip_hash spreads them); otherwise a list. */
export function parseSourceAddresses(text: string): string[] {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n < 1 || n > 254) throw new ConfigError('load options', [{ field: '--source-addresses', rule: 'a count must be 1 to 254' }]);
    return Array.from({ length: n }, (_, i) => `127.0.${i + 1}.1`);
  }
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** `--protocol`: the same flag in both CLIs. */
export const PROTOCOL_OPTION = () =>
  new Option('--protocol <name>', "the client protocol: native, or Centrifugo's at /connection/websocket").choices([
    'native',
    'centrifuge',
  ]);

/** The flags that set the load profile: the load client's, and the local runner's (scripts/local.ts), the same parsers and rules. */
export interface ProfileFlags {
  connections?: string;
  duration?: string;
  rampRate?: string;
  senders?: string;
  rate?: string;
  arrival?: string;
  payload?: string;
  topics?: string;
  publishRate?: string;
  compression?: boolean;
  delta?: boolean;
  protocol?: string;
  /** false with --no-reconnect */
  reconnect?: boolean;
  sourceAddresses?: string;
  keyParam?: string;
  workers?: string;
  connectTimeout?: string;
  maxDuration?: string;
  threshold?: string[];
  acceptUntrustworthy?: boolean;
}

/** The load client's flags (buildCommand). */
interface LoadFlags extends ProfileFlags {
  profile?: string;
  ca?: string;
  insecure?: boolean;
  report?: string;
  html?: string;
  metricsPort?: string;
  quiet?: boolean;
}

/**
 * `base` (a profile file or JSON) with the flags applied: --connections, --duration and
 * --ramp-rate make one stage, and --duration sets the hard time limit (hardTimeLimitMs) unless
 * the profile has one. Unvalidated: loadProfileSchema checks the result.
 */
export function applyProfileFlags(base: Record<string, unknown>, o: ProfileFlags, source = 'load options'): Record<string, unknown> {
  const num = (field: string, text: string | undefined) => numberFlag(field, text, source);
  const dur = (field: string, text: string | undefined) => durationFlag(field, text, source);
  const merged: Record<string, unknown> = { ...base };
  const connections = num('--connections', o.connections);
  const duration = dur('--duration', o.duration);
  const rampRate = num('--ramp-rate', o.rampRate);
  if (connections !== undefined || duration !== undefined || rampRate !== undefined) {
    const first: Stage = (base.stages as Stage[] | undefined)?.[0] ?? DEFAULT_STAGE;
    const target = connections ?? first.connections;
    const rate = rampRate ?? first.rampRate;
    merged.stages = [
      duration !== undefined ? singleStage(target, duration, rate) : { connections: target, rampRate: rate, holdMs: first.holdMs },
    ];
    if (duration !== undefined && merged.maxDurationMs === undefined) merged.maxDurationMs = hardTimeLimitMs(duration);
  }
  const set = (key: string, value: unknown) => value !== undefined && (merged[key] = value);
  set('senderFraction', num('--senders', o.senders));
  set('messageRate', num('--rate', o.rate));
  set('arrival', o.arrival);
  if (o.payload !== undefined) {
    merged.payload = payloadFlag(o.payload, source);
  }
  set('topics', num('--topics', o.topics));
  set('publishRate', num('--publish-rate', o.publishRate));
  if (o.compression) merged.compression = true;
  if (o.delta) merged.delta = true;
  set('protocol', o.protocol);
  if (o.reconnect === false) merged.reconnect = { ...((base.reconnect as object) ?? {}), enabled: false };
  if (o.sourceAddresses) merged.sourceAddresses = parseSourceAddresses(o.sourceAddresses);
  set('keyParam', o.keyParam);
  set('workers', num('--workers', o.workers));
  set('connectTimeoutMs', dur('--connect-timeout', o.connectTimeout));
  set('maxDurationMs', dur('--max-duration', o.maxDuration));
  if (o.threshold) merged.thresholds = o.threshold;
  if (o.acceptUntrustworthy) merged.acceptUntrustworthy = true;

  return merged;
}

/** Flags > profile (file or env JSON) > defaults. Every problem names its field. */
export function resolveOptions(argv: string[], env: Env): LoadOptions {
  const command = buildCommand();
  command.parse(argv, { from: 'user' });
  const o = command.opts<LoadFlags>();
  const url = command.args[0] ?? env[LOAD_ENV.url];
  if (!url) throw new ConfigError('load options', [{ field: 'url', rule: `give a ws:// or wss:// URL (argument or ${LOAD_ENV.url})` }]);
  if (!/^wss?:\/\//.test(url)) throw new ConfigError('load options', [{ field: 'url', rule: `"${url}" must start with ws:// or wss://` }]);

  let base: Record<string, unknown> = {};
  const source = o.profile ? `profile ${o.profile}` : env[LOAD_ENV.profile] ? LOAD_ENV.profile : 'load profile';
  const raw = o.profile ? readText(o.profile) : env[LOAD_ENV.profile];
  if (raw) {
    try {
      base = JSON.parse(raw);
    } catch (error) {
      throw new ConfigError(source, [{ field: '(file)', rule: `not valid JSON: ${(error as Error).message}` }]);
    }
  }

  const merged = applyProfileFlags(base, o);

  const parsed = loadProfileSchema.safeParse(merged);
  if (!parsed.success) throw ConfigError.fromZod(source, parsed.error);
  const profile = parsed.data;
  for (const address of profile.sourceAddresses) {
    if (!address.startsWith('127.')) {
      throw new ConfigError(source, [
        { field: 'sourceAddresses', rule: `${address} is not a loopback address (127.0.0.0/8); load goes only to this machine` },
      ]);
    }
  }
  const thresholds = profile.thresholds.map((t, i) => {
    try {
      return parseThreshold(t);
    } catch (error) {
      throw new ConfigError(source, [{ field: `thresholds.${i}`, rule: (error as Error).message }]);
    }
  });

  const caPath: string | undefined = o.ca ?? env[LOAD_ENV.ca] ?? undefined;
  const insecure = Boolean(o.insecure) || env[LOAD_ENV.insecure] === '1' || env[LOAD_ENV.insecure] === 'true';
  const ca = caPath ? readBinary(caPath, '--ca') : undefined;
  const metricsPort = numberFlag('--metrics-port', o.metricsPort ?? env[LOAD_ENV.metricsPort]);
  if (metricsPort !== undefined && (!Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort > 65535)) {
    throw new ConfigError('load options', [{ field: '--metrics-port', rule: `${metricsPort} is not a port` }]);
  }
  return {
    url,
    ca,
    caPath,
    insecure,
    profile,
    thresholds,
    report: o.report ?? env[LOAD_ENV.report],
    html: o.html ?? env[LOAD_ENV.html],
    metricsPort,
    quiet: Boolean(o.quiet),
  };
}

function readText(path: string): string {
  return readBinary(path, '--profile').toString('utf8');
}

function readBinary(path: string, field: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new ConfigError('load options', [
      { field, rule: `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` },
    ]);
  }
}

/** `--payload`: N bytes, MIN-MAX bytes, or `github-webhooks:push,issues` (the events' real payloads). */
function payloadFlag(text: string, source: string): LoadProfileInput['payload'] {
  const webhooks = `${WEBHOOK_SOURCE}:`;
  if (text.startsWith(webhooks)) return { source: WEBHOOK_SOURCE, events: text.slice(webhooks.length).split(',').filter(Boolean) };
  const m = /^(\d+)(?:-(\d+))?$/.exec(text);
  if (!m) throw new ConfigError(source, [{ field: '--payload', rule: `"${text}" must be N or MIN-MAX bytes, or ${webhooks}EVENT,...` }]);
  return m[2] ? { kind: 'uniform', min: Number(m[1]), max: Number(m[2]) } : { kind: 'fixed', bytes: Number(m[1]) };
}
