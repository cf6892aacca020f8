/**
 * `npm run bench:peers` (not in CI): this load client beside the tools users would pick instead,
 * in one run, against the same target (the local topology: nginx with TLS, 2 replicas, per-replica
 * fan-out) with the same profile: N connections opened at R/s, a 128-byte message every 5 s on
 * each, held for a fixed time. In turn: this client, Artillery 2.0.34 (ws engine; installed with
 * the bench into a cache folder, outside the project's dependencies), tsung 1.7 (Debian;
 * websocket sessions) and a bare `ws` holder (the floor for a Node client). Each runs at N and
 * N/2, so the baseline cancels out of the memory per connection.
 *
 * Measured the same way for every tool: CPU seconds and peak RSS of its process tree (from
 * /proc, every 250 ms), connections open as nginx counts them (stub_status), and the peak
 * opening rate (nginx's accepted connections per second). Writes docs/benchmarks/peers.md.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Command } from 'commander';
import ts from 'typescript';
import { defineTopology, withoutAuth } from '../app/src/topology';
import { EXIT, runEntryPoint } from '../app/src/shared/exit';
import { NGINX_STATUS_PATH } from '../nginx/render';
import { nginxVersion, startLocalRun, type LocalRun } from '../local/run';
import { processTree, usageOf } from './proc';
import { median } from './stats';
import { LOOKUP_MEMORY_MS } from '../app/src/client/connector';

const ARTILLERY_VERSION = '2.0.34';
const ROOT = resolve(__dirname, '..');

const program = new Command('bench:peers')
  .option('--connections <n>', 'connections at the larger size (the smaller is half)', '3000')
  .option('--ramp-rate <n>', 'connections opened per second', '300')
  .option('--hold <d>', 'seconds each size is held after its ramp', '20')
  .option('--tools <list>', 'which tools, comma-separated', 'this client,artillery,tsung,bare ws')
  .option('--rounds <n>', 'rounds of this client and the bare holder, alternating (the others run once)', '3')
  .option('--out <file>', 'Markdown output', 'docs/benchmarks/peers.md')
  .parse();
const o = program.opts();

interface Sample {
  cpuSeconds: number;
  peakRssMb: number;
  /** Most connections nginx held at once during the run (less the baseline). */
  peakOpen: number;
  /** Most connections nginx accepted in one second. */
  peakOpenRate: number;
  seconds: number;
  exitCode: number;
  /** Connections opened and failed as the tool itself reports them. */
  reported?: { opened: number; failed: number };
  note?: string;
}

interface Tool {
  name: string;
  version: string;
  latencies: string;
  /** Connections opened and failed as the tool's own output says, after a run in `dir`. */
  outcome(dir: string, output: string): { opened: number; failed: number } | undefined;
  /** The command for `connections` at `rate`, each held `lifetime` seconds, or why it cannot run here. */
  command(
    target: LocalRun,
    connections: number,
    rate: number,
    lifetimeSeconds: number,
    dir: string,
  ): { file: string; args: string[]; env?: Record<string, string> } | { unavailable: string };
}

async function nginxStatus(target: LocalRun): Promise<{ active: number; accepts: number }> {
  const text = await (await fetch(`http://127.0.0.1:${target.httpPort}${NGINX_STATUS_PATH}`)).text();
  const active = Number(/Active connections:\s*(\d+)/.exec(text)?.[1] ?? 0);
  const [accepts] = (/\n\s*(\d+)\s+(\d+)\s+(\d+)/.exec(text) ?? []).slice(1).map(Number);
  return { active, accepts };
}

/** Runs one tool and measures it from the outside. */
async function measure(
  target: LocalRun,
  run: { file: string; args: string[]; env?: Record<string, string> },
  outcome: (output: string) => Sample['reported'],
): Promise<Sample> {
  const baseline = await nginxStatus(target);
  const started = performance.now();
  const child = spawn(run.file, run.args, { cwd: ROOT, env: { ...process.env, ...run.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number>((r) => child.on('close', (code) => r(code ?? 1)));
  const cpu = new Map<number, number>();
  let peakRss = 0;
  let peakOpen = 0;
  const accepts: { t: number; n: number }[] = [];
  let done = false;
  void exited.then(() => (done = true));
  while (!done) {
    let rss = 0;
    for (const pid of processTree(child.pid!)) {
      const usage = usageOf(pid);
      if (!usage) continue;
      cpu.set(pid, Math.max(cpu.get(pid) ?? 0, usage.cpuSeconds));
      rss += usage.rssBytes;
    }
    peakRss = Math.max(peakRss, rss);
    const status = await nginxStatus(target).catch(() => undefined);
    if (status) {
      // stub_status counts its own request as active.
      peakOpen = Math.max(peakOpen, status.active - baseline.active);
      accepts.push({ t: performance.now(), n: status.accepts });
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const exitCode = await exited;
  let peakRate = 0;
  for (const a of accepts) {
    const later = accepts.find((b) => b.t >= a.t + 1000);
    if (later) peakRate = Math.max(peakRate, Math.round(((later.n - a.n) * 1000) / (later.t - a.t)));
  }
  const cpuSeconds = [...cpu.values()].reduce((x, y) => x + y, 0);
  return {
    cpuSeconds: Math.round(cpuSeconds * 10) / 10,
    peakRssMb: Math.round(peakRss / 1e6),
    peakOpen,
    peakOpenRate: peakRate,
    seconds: Math.round((performance.now() - started) / 100) / 10,
    exitCode,
    reported: (() => {
      try {
        return outcome(output);
      } catch {
        return undefined;
      }
    })(),
    note: exitCode === 0 ? undefined : output.trim().split('\n').slice(-3).join(' / '),
  };
}

/** Artillery, installed once into a cache folder (its postinstall would download a browser, which fails here). */
function artilleryBin(): string | { unavailable: string } {
  const dir = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'ws-notifications', `artillery-${ARTILLERY_VERSION}`);
  const bin = join(dir, 'node_modules', 'artillery', 'bin', 'run');
  if (!existsSync(bin)) {
    console.error(`peers: installing artillery@${ARTILLERY_VERSION} into ${dir} (once)`);
    mkdirSync(dir, { recursive: true });
    const installed = spawnSync(
      'npm',
      ['install', '--prefix', dir, '--no-save', '--no-audit', '--no-fund', '--ignore-scripts', `artillery@${ARTILLERY_VERSION}`],
      {
        env: { ...process.env, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: '1' },
        encoding: 'utf8',
      },
    );
    if (installed.status !== 0 || !existsSync(bin))
      return {
        unavailable: `npm install artillery@${ARTILLERY_VERSION} failed: ${(installed.stderr || '').trim().split('\n').slice(-2).join(' ')}`,
      };
  }
  return bin;
}

function tsungVersion(): string | undefined {
  const r = spawnSync('tsung', ['-v'], { encoding: 'utf8' });
  return r.error ? undefined : (r.stdout + r.stderr).trim().replace(/^.*?([\d.]+).*$/s, '$1');
}

const TOOLS: Tool[] = [
  {
    name: 'this client',
    version: 'this repository',
    latencies:
      'connect (TCP, TLS, upgrade) and RTT (corrected for coordinated omission, and as sent) as HDR percentiles; push latency; closes by code',
    outcome: (dir) => {
      const r = JSON.parse(readFileSync(join(dir, 'client.json'), 'utf8'));
      return { opened: r.connections.opened, failed: r.connections.failed };
    },
    command: (target, n, rate, lifetime, dir) => ({
      file: process.execPath,
      args: [
        ...target.clientCommand,
        target.url,
        '--ca',
        target.caFile,
        '-c',
        String(n),
        '--ramp-rate',
        String(rate),
        '-d',
        `${Math.ceil(n / rate) + lifetime}s`,
        '--senders',
        '1',
        '--rate',
        '0.2',
        '--arrival',
        'fixed',
        '--topics',
        '0',
        '--publish-rate',
        '0',
        '--quiet',
        '--accept-untrustworthy',
        '--report',
        join(dir, 'client.json'),
        '-t',
        'errors>=0',
      ],
    }),
  },
  {
    name: 'artillery',
    version: ARTILLERY_VERSION,
    latencies: 'none for WebSocket messages: counts (messages sent, sessions created, completed, failed) and session length',
    outcome: (dir) => {
      const counters = JSON.parse(readFileSync(join(dir, 'artillery.json'), 'utf8')).aggregate.counters as Record<string, number>;
      return { opened: counters['vusers.created'] ?? 0, failed: counters['vusers.failed'] ?? 0 };
    },
    command: (target, n, rate, lifetime, dir) => {
      const bin = artilleryBin();
      if (typeof bin !== 'string') return bin;
      const script = join(dir, 'artillery.yml');
      writeFileSync(
        script,
        `config:
  target: "${target.url}"
  phases:
    - duration: ${Math.ceil(n / rate)}
      arrivalRate: ${rate}
scenarios:
  - engine: ws
    flow:
      - loop:
          - send: "${'x'.repeat(128)}"
          - think: 5
        count: ${Math.max(1, Math.round(lifetime / 5))}
`,
      );
      return {
        file: process.execPath,
        args: [bin, 'run', '--output', join(dir, 'artillery.json'), script],
        env: { NODE_EXTRA_CA_CERTS: target.caFile },
      };
    },
  },
  {
    name: 'tsung',
    version: tsungVersion() ?? 'not installed',
    latencies: 'connect time (mean and max per 10 s); a message round trip only with ack="local" and a matching answer; no percentiles',
    outcome: (dir) => {
      // tsung.log: "stats: users_count 0 N" (sessions started) and "stats: error_* 0 N" lines, cumulative in the last block.
      const [run] = readdirSync(join(dir, 'tsung-logs'));
      const log = readFileSync(join(dir, 'tsung-logs', run, 'tsung.log'), 'utf8');
      const last = (name: string) => Number([...log.matchAll(new RegExp(`^stats: ${name} \\S+ (\\d+)`, 'gm'))].at(-1)?.[1] ?? 0);
      const errors = new Set([...log.matchAll(/^stats: (error_\S+)/gm)].map((m) => m[1]));
      return { opened: last('users_count'), failed: [...errors].reduce((a, e) => a + last(e), 0) };
    },
    command: (target, n, rate, lifetime, dir) => {
      if (!tsungVersion()) return { unavailable: 'tsung is not installed (apt-get install tsung)' };
      const xml = join(dir, 'tsung.xml');
      writeFileSync(
        xml,
        `<?xml version="1.0"?>
<!DOCTYPE tsung SYSTEM "/usr/share/tsung/tsung-1.0.dtd">
<tsung loglevel="warning" version="1.0">
  <clients><client host="localhost" use_controller_vm="true" maxusers="${n + 100}"/></clients>
  <servers><server host="127.0.0.1" port="${target.httpsPort}" type="ssl"/></servers>
  <load><arrivalphase phase="1" duration="${Math.ceil(n / rate)}" unit="second"><users maxnumber="${n}" arrivalrate="${rate}" unit="second"/></arrivalphase></load>
  <options><option name="ports_range" min="1025" max="65535"/></options>
  <sessions>
    <session name="hold" probability="100" type="ts_websocket">
      <request><websocket type="connect" path="${target.topology.server.path}"/></request>
      <for from="1" to="${Math.max(1, Math.round(lifetime / 5))}" incr="1" var="i">
        <request><websocket type="message" ack="no_ack">${'x'.repeat(128)}</websocket></request>
        <thinktime value="5" random="false"/>
      </for>
    </session>
  </sessions>
</tsung>
`,
      );
      return { file: 'tsung', args: ['-f', xml, '-l', join(dir, 'tsung-logs'), 'start'] };
    },
  },
  {
    name: 'bare ws',
    version: `ws ${JSON.parse(readFileSync(join(ROOT, 'node_modules', 'ws', 'package.json'), 'utf8')).version}`,
    latencies: 'none (it only holds connections)',
    outcome: (_dir, output) => JSON.parse(output.trim().split('\n').at(-1)!),
    command: (target, n, rate, lifetime, dir) => ({
      file: process.execPath,
      args: [bareHolderScript(dir), target.url, target.caFile, String(n), String(rate), String(lifetime)],
      env: { NODE_PATH: join(ROOT, 'node_modules') },
    }),
  },
];

/**
 * The bare holder as plain JavaScript in `dir`, as this client runs compiled (local/build.ts):
 * neither pays for compiling TypeScript at run time. One file, so TypeScript's transpiler is enough.
 */
function bareHolderScript(dir: string): string {
  const source = readFileSync(join(ROOT, 'bench', 'peers', 'bare-holder.ts'), 'utf8');
  const { outputText } = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
  });
  const file = join(dir, 'bare-holder.js');
  writeFileSync(file, outputText);
  return file;
}

/** The pair the goal compares: run every round, alternating, so both see the machine alike. */
const PAIR = ['this client', 'bare ws'];

interface ToolResult {
  tool: Tool;
  /** Each round's samples by connections asked. */
  rounds: Partial<Record<number, Sample>>[];
  unavailable?: string;
}

async function main(): Promise<number> {
  const version = nginxVersion();
  if (!version) throw new Error('nginx is required (apt-get install nginx-light)');
  const large = Number(o.connections);
  const small = Math.floor(large / 2);
  const rate = Number(o.rampRate);
  const hold = Number(o.hold);
  const wanted = String(o.tools)
    .split(',')
    .map((s) => s.trim());
  const tools = TOOLS.filter((t) => wanted.includes(t.name));
  const topology = defineTopology(
    withoutAuth({
      replicas: 2,
      broker: { enabled: false },
      proxy: { nginxVersion: version, targetConnections: Math.max(10_000, large) },
    }),
  );
  const target = await startLocalRun(topology);
  const startedAt = new Date();
  const results: ToolResult[] = tools.map((tool) => ({ tool, rounds: [] }));
  try {
    for (let round = 0; round < Number(o.rounds); round++) {
      for (const entry of results) {
        if (entry.unavailable || (round > 0 && !PAIR.includes(entry.tool.name))) continue;
        const samples: Partial<Record<number, Sample>> = {};
        for (const n of [large, small]) {
          const dir = mkdtempSync(join(tmpdir(), 'peers-'));
          // Each connection lives as long on average as this client's (held to the end of ramp + hold).
          const lifetime = hold + Math.ceil(n / rate / 2);
          const run = entry.tool.command(target, n, rate, entry.tool.name === 'this client' ? hold : lifetime, dir);
          if ('unavailable' in run) {
            entry.unavailable = run.unavailable;
            break;
          }
          console.error(`peers: round ${round + 1}, ${entry.tool.name}, ${n} connections at ${rate}/s`);
          samples[n] = await measure(target, run, (output) => entry.tool.outcome(dir, output));
          // Let nginx and the replicas see every close before the next tool starts.
          await new Promise((r) => setTimeout(r, 3_000));
        }
        if (!entry.unavailable) entry.rounds.push(samples);
      }
    }
  } finally {
    await target.stop();
  }
  const md = markdown(results, { large, small, rate, hold, rounds: Number(o.rounds), version, startedAt });
  mkdirSync(dirname(resolve(o.out)), { recursive: true });
  writeFileSync(resolve(o.out), md);
  console.log(md);
  return EXIT.ok;
}

function markdown(
  results: ToolResult[],
  run: { large: number; small: number; rate: number; hold: number; rounds: number; version: string; startedAt: Date },
): string {
  const { large, small } = run;
  // Per connection held: the RSS difference over the difference in connections open at the peak.
  const perConnKb = (samples: Partial<Record<number, Sample>>) => {
    const a = samples[large];
    const b = samples[small];
    return a && b && a.peakOpen > b.peakOpen ? Math.round(((a.peakRssMb - b.peakRssMb) * 1000) / (a.peakOpen - b.peakOpen)) : undefined;
  };
  const medianOf = (r: ToolResult, f: (samples: Partial<Record<number, Sample>>) => number | undefined) => {
    const xs = r.rounds.map(f).filter((x): x is number => x !== undefined);
    return xs.length ? median(xs) : undefined;
  };
  const rows = results.map((r) => {
    const s = r.rounds[0]?.[large];
    if (!s) return `| ${r.tool.name} | ${r.tool.version} | — | — | — | — | — | — | — | — | ${r.unavailable ?? 'did not run'} |`;
    const exit = Math.max(...r.rounds.map((x) => x[large]?.exitCode ?? 0));
    return (
      `| ${r.tool.name} | ${r.tool.version} | ${r.rounds.length} | ${large} / ` +
      `${s.reported ? `${s.reported.opened} / ${s.reported.failed}` : '? / ?'} | ${s.peakOpen} | ${medianOf(r, (x) => x[large]?.cpuSeconds)} | ` +
      `${medianOf(r, (x) => x[large]?.peakRssMb)} | ${medianOf(r, perConnKb) ?? '—'} | ${s.peakOpenRate} | ${exit}${s.note ? ` (${s.note.replace(/\|/g, '/')})` : ''} | ${r.tool.latencies} |`
    );
  });
  const oursRow = results.find((r) => r.tool.name === 'this client');
  const bareRow = results.find((r) => r.tool.name === 'bare ws');
  const paired = Math.min(oursRow?.rounds.length ?? 0, bareRow?.rounds.length ?? 0);
  /** Each round's ratio of this client to the bare holder, and their median. */
  const ratios = (f: (samples: Partial<Record<number, Sample>>) => number | undefined) => {
    const each = Array.from({ length: paired }, (_, i) => {
      const a = f(oursRow!.rounds[i]);
      const b = f(bareRow!.rounds[i]);
      return a !== undefined && b ? a / b : undefined;
    }).filter((x): x is number => x !== undefined);
    return each.length ? { each: each.map((x) => x.toFixed(2)).join(', '), median: median(each) } : undefined;
  };
  const line = (what: string, r: ReturnType<typeof ratios>, goal?: number) =>
    r
      ? `${what} ×${r.median.toFixed(2)} (rounds: ${r.each})${goal === undefined ? '' : ` (the goal: at most ${goal}×: **${r.median <= goal ? 'met' : 'not met'}**)`}`
      : `${what} —`;
  return `# This client beside Artillery, tsung and a bare ws holder

Produced by \`npm run bench:peers\` on ${run.startedAt.toISOString().slice(0, 10)} (linux, ${cpus().length} cores, Node ${process.version}, nginx ${run.version}).
The same target for every tool: the local topology (nginx with TLS, 2 replicas, per-replica fan-out, on this machine). The
same profile: ${large.toLocaleString('en')} WSS connections opened at ${run.rate}/s, a 128-byte message every 5 s on each, held ${run.hold} s after the
ramp (the others hold each connection ${run.hold} s plus half the ramp, the same connection-seconds); then the same at ${small.toLocaleString('en')}.
Measured from outside for every tool: CPU seconds and peak RSS of its process tree (/proc, every 250 ms); connections
open and the peak opening rate as nginx counts them (stub_status, accepted connections per second). This client and the
bare holder run ${run.rounds} rounds, alternating, so both see the machine alike (a process's peak RSS moves with its garbage
collector's timing from run to run); their CPU and memory columns are the medians of the rounds.

| tool | version | rounds | asked / opened / failed (as the tool reports) | open at once (nginx) | CPU s | peak RSS (MB) | RSS per connection held (KB, ${small}→${large}) | peak opening rate (/s) | exit | latencies it reports |
| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |
${rows.join('\n')}

This client against the bare holder, each round's ratio and their median:
${line('RSS per connection held', ratios(perConnKb), 1.1)};
${line(
  `CPU at ${large.toLocaleString('en')}`,
  ratios((x) => x[large]?.cpuSeconds),
  1.0,
)};
${line(
  `peak RSS at ${large.toLocaleString('en')}`,
  ratios((x) => x[large]?.peakRssMb),
)};
while measuring everything it measures. This client keeps a host's addresses for ${LOOKUP_MEMORY_MS / 1000} s (client/connector.ts), as a browser's
DNS cache does; the holder, as \`ws\` does, looks the host up for each connection. Both run as plain JavaScript: this client compiled as \`npm run local\` runs it, the
holder transpiled.

Commands, as the bench ran them (URL, CA and sizes filled in): this client \`node app/.build/HASH/dist/client/main.js URL --ca CA -c N
--ramp-rate R -d (N/R + hold)s --senders 1 --rate 0.2 --arrival fixed --topics 0 --publish-rate 0\`; Artillery
\`PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm i --ignore-scripts artillery@${ARTILLERY_VERSION}\` into ~/.cache/ws-notifications, then \`artillery run\` of a ws-engine
script (arrivalRate R for N/R s; loop: send, think 5) with \`NODE_EXTRA_CA_CERTS\`; tsung \`tsung -f tsung.xml start\` (ts_websocket session:
connect, then message + thinktime 5 in a loop, server type ssl); bare holder \`bench/peers/bare-holder.ts\`, transpiled.
`;
}

runEntryPoint(main);
