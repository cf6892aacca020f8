/**
 * `npm run bench:auth` (not in CI): the default run, `npm run local -- --report r.json`, with and
 * without `--auth`, alternating, so both see the machine as it is. Compares what auth adds to a
 * connect: `ready` (socket to hello: with auth, the token checked against the provider's keys) and
 * `connect` (socket to open), against the goal of issue 25 (ready p99 with auth ≤ 1.3× without),
 * and writes docs/benchmarks/auth.md with the exact commands.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname } from 'node:path';
import { Command } from 'commander';
import { benchLocalRun } from './local-run';
import { classifyLocal, cpuBetween, cpuSeconds, machineTicks, type Classify } from './proc';
import type { LoadReport } from '../app/src/client/report-model';
import { runEntryPoint, EXIT } from '../app/src/shared/exit';
import { DEFAULT_STAGE } from '../app/src/shared/profile';
import { median } from './stats';

const o = new Command('bench:auth')
  .option('--pairs <n>', 'runs of each kind, alternating', '3')
  .option('--out <file>', 'Markdown output', 'docs/benchmarks/auth.md')
  .parse()
  .opts<{ pairs: string; out: string }>();

/** The goal of issue 25: connect p99 with auth at most this many times without. */
const GOAL_RATIO = 1.3;

/** The local run's parts, the load client's process and the development IdP included. */
const classify: Classify = (cmdline, pid) =>
  cmdline.includes('client/main') ? 'load client' : cmdline.includes('idp/main') ? 'idp' : classifyLocal(cmdline, pid);
const PARTS = ['load client', 'nginx', 'replicas', 'nats-server', 'idp'] as const;

/** How often the parts' CPU is read while a run goes. */
const SAMPLE_MS = 250;

interface Sample {
  cpu: ReturnType<typeof cpuSeconds>;
  ticks: ReturnType<typeof machineTicks>;
}

/** What the ramp cost: CPU seconds per part and the machine's busy share while the connections opened. */
interface RampCost {
  seconds: number;
  cpu: Record<string, number>;
  busyPercent: number;
}

/**
 * One run, its parts' CPU read every 250 ms. The ramp is found from nginx, which has nothing to do
 * before the first connection (the tokens come from the IdP directly): it starts at the first of
 * three samples in a row in which nginx used CPU and lasts as long as the run took to open all its
 * connections.
 */
async function measuredRun(args: string[]): Promise<{ code: number; report: LoadReport; ramp?: RampCost }> {
  const samples: Sample[] = [];
  const read = () => samples.push({ cpu: cpuSeconds(classify), ticks: machineTicks() });
  read();
  const timer = setInterval(read, SAMPLE_MS);
  try {
    const run = await benchLocalRun(args, 'bench-auth-');
    return { ...run, ramp: rampCost(samples, run.report) };
  } finally {
    clearInterval(timer);
  }
}

/** Whether nginx's workers, all already running at the sample before, used a tenth of a core or more since. */
function nginxBusy(before: Sample, after: Sample): boolean {
  let used = 0;
  for (const [pid, { part, seconds }] of after.cpu) {
    if (part !== 'nginx') continue;
    const was = before.cpu.get(pid);
    if (!was) return false;
    used += seconds - was.seconds;
  }
  return used >= NGINX_BUSY_SHARE * (SAMPLE_MS / 1000);
}

/** Samples in a row nginx must be busy in to mark the ramp's start. */
const SUSTAINED = 3;

/** nginx's share of a core that marks the ramp's start (a probe through it uses far less). */
const NGINX_BUSY_SHARE = 0.1;

function rampCost(samples: Sample[], report: LoadReport): RampCost | undefined {
  // Busy for SUSTAINED samples in a row: a worker's own start-up (its TLS context) is one.
  const busyFrom = (i: number) =>
    Array.from({ length: SUSTAINED }, (_, k) => i + k).every((j) => j < samples.length && nginxBusy(samples[j - 1], samples[j]));
  const first = samples.findIndex((_, i) => i > 0 && busyFrom(i));
  const achieved = report.opening.achievedPerSecond;
  if (first < 1 || !achieved) return undefined;
  const seconds = report.connections.opened / achieved;
  const last = Math.min(samples.length - 1, first + Math.ceil((seconds * 1000) / SAMPLE_MS));
  const [from, to] = [samples[first - 1], samples[last]];
  const busy = to.ticks.busy - from.ticks.busy;
  return {
    seconds: ((last - first + 1) * SAMPLE_MS) / 1000,
    cpu: cpuBetween(from.cpu, to.cpu),
    busyPercent: Math.round((busy / (to.ticks.total - from.ticks.total)) * 100),
  };
}

async function main(): Promise<number> {
  const startedAt = new Date();
  const runs: Run[] = [];
  for (let i = 0; i < Number(o.pairs); i++) {
    for (const auth of [false, true]) {
      console.error(`bench:auth: pair ${i + 1} of ${o.pairs}, ${auth ? 'with' : 'without'} --auth`);
      runs.push({ auth, ...(await measuredRun(auth ? ['--auth'] : [])) });
    }
  }
  const p99 = (auth: boolean, key: 'ready' | 'connect') =>
    median(runs.filter((r) => r.auth === auth).map((r) => r.report.latency[key].p99));
  const ratio = p99(true, 'ready') / p99(false, 'ready');
  const allPassed = runs.every((r) => r.code === EXIT.ok);
  const row = ({ auth, code, report: r }: (typeof runs)[number]) =>
    `| ${auth ? 'with --auth' : 'without'} | ${code} ${r.verdict} | ${r.latency.ready.p50} | ${r.latency.ready.p99} | ${r.latency.connect.p50} | ` +
    `${r.latency.connect.p99} | ${r.latency.rtt.p99} | ${r.auth ? r.auth.tokens : '—'} | ${r.generator.trustworthy ? 'yes' : 'no'} |`;
  const md = `# What auth adds to a connect

Produced by \`npm run bench:auth\` on ${startedAt.toISOString().slice(0, 10)} (linux, ${cpus().length} cores, Node ${process.version}).
Each row is the default run, \`npm run local -- --report r.json\`, or \`npm run local -- --auth --report r.json\`,
alternating: nginx with TLS, 3 replicas, nats-server, the load client and (with \`--auth\`) the
development OpenID provider all on this machine; ${DEFAULT_STAGE.connections} connections ramped at ${DEFAULT_STAGE.rampRate}/s, held 20 s. With
\`--auth\` each virtual user fetches its token before the ramp (as an application has its session's
token before it connects), sends it first, and the replica verifies it (ES256, keys cached from
the provider's JWKS) before \`hello\`.

\`ready\` is from the socket to \`hello\`: what a connect costs an application, with auth including the
token check. \`connect\` is from the socket to the WebSocket open.

**Goal** (issue 25): ready p99 with auth ≤ ${GOAL_RATIO}× without (medians of the runs): ${p99(true, 'ready')} ms / ${p99(false, 'ready')} ms = **${ratio.toFixed(2)}×, ${ratio <= GOAL_RATIO ? 'met' : 'not met'}**. Every run passed its thresholds: **${allPassed ? 'yes' : 'no'}**.

| run | exit, verdict | ready p50 (ms) | ready p99 | connect p50 | connect p99 | RTT p99 | tokens | trustworthy |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |
${runs.map(row).join('\n')}
${rampSection(runs)}`;
  mkdirSync(dirname(o.out), { recursive: true });
  writeFileSync(o.out, md);
  console.log(md);
  return allPassed && ratio <= GOAL_RATIO ? EXIT.ok : EXIT.failed;
}

type Run = { auth: boolean } & Awaited<ReturnType<typeof measuredRun>>;

/** Median CPU milliseconds per connection opened, for one part, over the runs of one kind. */
function perConnectMs(runs: Run[], auth: boolean, part: string): number {
  const of = runs.filter((r) => r.auth === auth && r.ramp);
  return median(of.map((r) => ((r.ramp!.cpu[part] ?? 0) * 1000) / r.report.connections.opened));
}

/** The lowest and highest ready p99 of the runs of one kind. */
function range(runs: Run[], auth: boolean): string {
  const p99s = runs.filter((r) => r.auth === auth).map((r) => r.report.latency.ready.p99);
  return `${Math.min(...p99s).toFixed(0)}–${Math.max(...p99s).toFixed(0)}`;
}

/** Where the ramp's CPU went, per run, and what auth added per connect. */
function rampSection(runs: Run[]): string {
  const measured = runs.filter((r) => r.ramp);
  if (measured.length === 0) return '';
  const total = (cpu: Record<string, number>) => Object.values(cpu).reduce((a, b) => a + b, 0);
  const busy = (auth: boolean) => median(measured.filter((r) => r.auth === auth).map((r) => r.ramp!.busyPercent));
  const added = PARTS.map((part) => {
    const d = perConnectMs(runs, true, part) - perConnectMs(runs, false, part);
    return `${part} ${d >= 0 ? '+' : '−'}${Math.abs(d).toFixed(2)}`;
  }).join(', ');
  return `
## Where the time goes: the ramp's CPU, per part

Read from /proc every ${SAMPLE_MS} ms while each run went. The ramp starts when nginx starts working (a tenth of a core or more,
${SUSTAINED} samples in a row: it has nothing to do before the first connection, the tokens come from the IdP directly)
and lasts as long as the run took to open its connections. Busy is the share of both cores in use, whoever used them.

| run | ramp (s) | machine busy | ${PARTS.join(' | ')} | total CPU s |
| --- | ---: | ---: | ${PARTS.map(() => '---:').join(' | ')} | ---: |
${measured
  .map(
    (r) =>
      `| ${r.auth ? 'with --auth' : 'without'} | ${r.ramp!.seconds.toFixed(2)} | ${r.ramp!.busyPercent}% | ` +
      `${PARTS.map((p) => (r.ramp!.cpu[p] ?? 0).toFixed(2)).join(' | ')} | ${total(r.ramp!.cpu).toFixed(2)} |`,
  )
  .join('\n')}

- **What auth adds per connect** (CPU ms, medians, with minus without): ${added}.
- **The machine while connections open**: ${busy(false)}% busy without auth, ${busy(true)}% with (medians).
- **How much a p99 moves**: ready p99 ${range(runs, false)} ms without auth, ${range(runs, true)} ms with, run to run. A p99
  over ${DEFAULT_STAGE.connections.toLocaleString('en')} connects is their ${Math.round(DEFAULT_STAGE.connections / 100)} slowest; at ${DEFAULT_STAGE.rampRate}/s about ${Math.round(DEFAULT_STAGE.rampRate / 25)} start in any 40 ms, so one 40 ms stall of
  any part (nginx, a replica, the client, on two shared cores) catches that many and sets it. With auth a connect spans one more exchange
  (\`connect\`, the token check, \`hello\`), more time in which such a stall can catch it.
- **What a connect costs alone** (profiled on 2026-12-07: one process holding a replica, a \`ws\` client and the
  development IdP, 2,000 connects at 20 at a time, no TLS, V8's sampling profiler): 0.42–0.53 ms of CPU without auth,
  1.03–1.13 ms with. Of the 0.6 ms auth adds, jose's \`jwtVerify\` takes about 0.17 ms on the main thread, and its
  ES256 check runs on libuv's thread pool (WebCrypto); \`node:crypto\`'s synchronous verify of the same token takes
  63 µs. The rest is spread over the exchange itself, with no function above 2% of the profile: a 1 KB \`connect\`
  frame masked, unmasked, checked and parsed, and the \`hello\` back, each a turn of both event loops.
- **A synchronous token check, tried** (2026-12-07: \`node:crypto\`'s verify with the key jose fetched, in place of
  \`jwtVerify\`; this bench, 3 pairs): the replicas' added CPU per connect fell from 0.8 ms to 0.4 ms (on two busy
  cores WebCrypto's hop to libuv's thread pool and back costs more than in a quiet process), and the ready p99 ratio
  was 1.74×, against 1.79× and 2.11× with jose the same day. Not kept: it stays short of the goal, and its claim
  checks would be hand-written beside jose's.
`;
}

runEntryPoint(main);
