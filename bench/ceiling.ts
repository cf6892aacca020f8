/**
 * `npm run bench:ceiling` (not in CI): how many WSS connections this machine holds through nginx
 * to 3 replicas, and what each one costs in memory. For each size (10k, 30k, 50k by default) on a
 * fresh local topology: ramp at the default rate, hold, with no application traffic (no echoes,
 * no publications: the server's pings only), so what is measured is holding connections, not
 * moving messages. Reports opened / failed (by class) / peak, nginx's limits from its error log,
 * and resident memory per part (load client, nginx, replicas, nats-server) sampled at the end of
 * the hold, per connection. Then (--traffic, 50k by default) the issue's own command: the same
 * topology with the default profile's traffic (echoes, publications) for 4 minutes, with CPU per
 * part, to show which limit stops it. Writes docs/benchmarks/ceiling.md.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { cpus, totalmem } from 'node:os';
import { Command } from 'commander';
import { defineTopology, withoutAuth } from '../app/src/topology';
import { runLoad, workersFor, type Progress } from '../app/src/client/coordinator';
import { buildReport } from '../app/src/client/report';
import type { MeasuredReport } from '../app/src/client/report-model';
import { parseSourceAddresses, sourceAddressesNeeded } from '../app/src/client/options';
import { DEFAULT_STAGE, loadProfileSchema, singleStage } from '../app/src/shared/profile';
import { parseDuration } from '../app/src/shared/duration';
import { EXIT, runEntryPoint } from '../app/src/shared/exit';
import { nginxErrorLog } from '../nginx/render';
import { nginxLimitsHit } from '../local/limits';
import { nginxVersion, startLocalRun } from '../local/run';
import { cpuBetween, cpuSeconds, machineTicks, rssByPart } from './proc';

const program = new Command('bench:ceiling')
  .option('--sizes <list>', 'connection counts, comma-separated', '10000,30000,50000')
  .option('--hold <d>', 'hold once every connection is asked for (the table gives how long all of them were open)', '240s')
  .option('--traffic <list>', "sizes to run again with the default profile's traffic, for --duration (empty: none)", '50000')
  .option('--duration <d>', "the traffic runs' duration, ramp included (as `npm run local -- --duration`)", '4m')
  .option('--settings <size>', 'hold this many once per nginx setting tried (empty: none)', '10000')
  .option('--settings-hold <d>', 'how long each setting holds them', '30s')
  .option('--out <file>', 'Markdown output', 'docs/benchmarks/ceiling.md')
  .parse();
const o = program.opts();

/** The nginx settings tried, one at a time from nginx's own defaults to the topology's. */
const NGINX_SETTINGS = [
  { name: "nginx's defaults (ssl_buffer_size 16k, proxy_buffer_size 4k)", tlsBufferBytes: 16_384, relayBufferBytes: 4096 },
  { name: 'ssl_buffer_size 4k', tlsBufferBytes: 4096, relayBufferBytes: 4096 },
  { name: 'ssl_buffer_size 1k (the topology default)', tlsBufferBytes: 1024, relayBufferBytes: 4096 },
  { name: 'ssl_buffer_size 1k, proxy_buffer_size 1k', tlsBufferBytes: 1024, relayBufferBytes: 1024 },
] as const;
type NginxSetting = (typeof NGINX_SETTINGS)[number];

interface Row {
  size: number;
  report: MeasuredReport;
  memory: Record<string, { mb: number; processes: number }>;
  nginxLimits: Record<string, number>;
  nginxWorkers: number;
  /** With traffic: CPU seconds per part over the run, and the machine's busy share. */
  cpu?: { parts: Record<string, number>; busyPercent: number; seconds: number };
}

async function measure(size: number, traffic = false, setting?: NginxSetting): Promise<Row> {
  const version = nginxVersion();
  if (!version) throw new Error('nginx is required (apt-get install nginx-light)');
  const holdMs = parseDuration(setting ? o.settingsHold : o.hold);
  const buffers = setting ? { tlsBufferBytes: setting.tlsBufferBytes, relayBufferBytes: setting.relayBufferBytes } : {};
  const addresses = sourceAddressesNeeded(size);
  // Without traffic: holding only. With it: what `npm run local -- --connections N --duration D` runs.
  const durationMs = parseDuration(o.duration);
  const quiet = { senderFraction: 0, messageRate: 0, topics: 0, publishRate: 0 };
  const stage = traffic ? singleStage(size, durationMs) : { connections: size, rampRate: DEFAULT_STAGE.rampRate, holdMs };
  const topology = defineTopology(
    withoutAuth({
      replicas: 3,
      proxy: { nginxVersion: version, targetConnections: Math.max(10_000, size), ...buffers },
      load: {
        stages: [stage],
        ...(traffic ? {} : quiet),
        sourceAddresses: addresses ? parseSourceAddresses(String(addresses)) : [],
        thresholds: ['errors==0', 'closes.unexpected==0'],
        maxDurationMs: Math.ceil((size / DEFAULT_STAGE.rampRate) * 1000) + stage.holdMs + 120_000,
      },
    }),
  );
  console.error(
    `ceiling: ${size} connections${traffic ? ' with traffic' : ''} (ramp ${DEFAULT_STAGE.rampRate}/s, hold ${stage.holdMs / 1000} ` +
      `s, ${workersFor(topology.load)} client process(es), ${topology.proxy.workerProcesses} nginx workers)`,
  );
  const local = await startLocalRun(topology);
  const holdEnd = size / DEFAULT_STAGE.rampRate + stage.holdMs / 1000 - 3;
  const [cpuBefore, ticksBefore, t0] = [cpuSeconds(), machineTicks(), performance.now()];
  let [cpuAfter, ticksAfter] = [cpuBefore, ticksBefore];
  let memory: Row['memory'] = {};
  const startedAt = new Date();
  let result: Awaited<ReturnType<typeof runLoad>>;
  let nginxLimits: Record<string, number> = {};
  try {
    result = await runLoad({
      url: local.url,
      ca: readFileSync(local.caFile),
      insecure: false,
      workers: workersFor(topology.load),
      profile: topology.load,
      onProgress: (p: Progress) => {
        if (!Object.keys(memory).length && p.elapsedSeconds >= holdEnd) memory = rssByPart();
        // The load's processes are gone once it returns: its CPU is read while they run.
        if (traffic && Math.floor(p.elapsedSeconds) % 5 === 0) [cpuAfter, ticksAfter] = [cpuSeconds(), machineTicks()];
        if (Math.floor(p.elapsedSeconds) % 30 === 0)
          console.error(`ceiling: ${size}: ${p.elapsedSeconds.toFixed(0)} s, open ${p.open}, errors ${p.errors}`);
      },
    });
    const errorLog = nginxErrorLog(local.runtimeDir);
    nginxLimits = nginxLimitsHit(existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : '');
  } finally {
    await local.stop();
  }
  const busy = (ticksAfter.busy - ticksBefore.busy) / Math.max(1, ticksAfter.total - ticksBefore.total);
  const cpu = traffic
    ? { parts: cpuBetween(cpuBefore, cpuAfter), busyPercent: Math.round(100 * busy), seconds: Math.round((performance.now() - t0) / 1000) }
    : undefined;
  return {
    size,
    report: buildReport({ ...result, target: local.url, startedAt, profile: topology.load }),
    memory,
    nginxLimits,
    nginxWorkers: topology.proxy.workerProcesses,
    cpu,
  };
}

/** The traffic the default profile offers at `size` connections: echoes and deliveries per second. */
function offered(size: number): { echoes: number; deliveries: number } {
  const p = loadProfileSchema.parse({});
  return {
    echoes: Math.round(size * p.senderFraction * p.messageRate),
    deliveries: Math.round(p.publishRate * (p.topics ? size / p.topics : 0)),
  };
}

/** Seconds during which every connection of the size was open (from the per-second timeline). */
function heldAtFull(r: Row): number {
  const full = r.report.timeline.filter((p) => p.open >= r.size);
  return full.length ? Math.round(full[full.length - 1].t - full[0].t) : 0;
}

function trafficTable(rows: Row[]): string {
  if (!rows.length) return '';
  const parts = ['load client', 'nginx', 'replicas', 'nats-server'];
  return `
## With the default profile's traffic: \`npm run local -- --replicas 3 --connections N --duration ${o.duration}\`

The same topology and ramp, now with what the default profile sends at full size: a fifth of the connections echo once a
second, and ${loadProfileSchema.parse({}).publishRate} notifications a second (in all) each go to their topic's subscribers, a tenth of the connections, through the broker.
CPU seconds are per part over the run (sampled from /proc every 5 s while it runs); machine busy is the share of both cores in use.

| connections asked | offered (echoes/s + deliveries/s) | opened | peak | failed (by class) | opening achieved (/s) | CPU s: ${parts.join(' / ')} | machine busy | run (s) | verdict |
| ---: | --- | ---: | ---: | --- | ---: | --- | ---: | ---: | --- |
${rows
  .map((r) => {
    const fails =
      Object.entries(r.report.errors)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || '0';
    const load = offered(r.size);
    return (
      `| ${r.size.toLocaleString('en')} | ${load.echoes.toLocaleString('en')} + ${load.deliveries.toLocaleString('en')} | ` +
      `${r.report.connections.opened} | ${r.report.connections.peak} | ${r.report.connections.failed} (${fails}) | ` +
      `${r.report.opening.achievedPerSecond ?? '—'} | ${parts.map((p) => r.cpu?.parts[p] ?? '—').join(' / ')} | ` +
      `${r.cpu?.busyPercent ?? '—'}% | ${r.cpu?.seconds ?? '—'} | ${r.report.generator.trustworthy ? 'trustworthy' : 'generator lagged'} |`
    );
  })
  .join('\n')}
${rows.map((r) => coresNeeded(r, parts)).join('')}`;
}

/**
 * For a run the cores stopped short of its size (issue 28: "the CPU per part that would be
 * needed"): each part's CPU scaled from the connections it held to the size, over the same run,
 * in cores. A linear model: the run's own CPU per held connection, handshakes and traffic alike.
 */
function coresNeeded(r: Row, parts: readonly string[]): string {
  const held = r.report.connections.peak;
  if (!r.cpu || held === 0 || held >= r.size) return '';
  const { cpu } = r;
  const cores = (part: string) => ((cpu.parts[part] ?? 0) * r.size) / held / cpu.seconds;
  const total = parts.reduce((sum, p) => sum + cores(p), 0);
  const here = cpus().length;
  return `
**What all ${r.size.toLocaleString('en')} would need:** ${held.toLocaleString('en')} were held at most, so at the CPU per held connection this run
measured, the same ${cpu.seconds} s with all of them would keep busy ${parts.map((p) => `${p} ${cores(p).toFixed(2)}`).join(', ')} cores:
${total.toFixed(2)} in all, against the ${here} here. To open them all on this machine, each part would need ${(here / total).toFixed(2)}× the CPU
per connection it used.
`;
}

/** nginx's memory per held connection under each setting tried, and what it saved against nginx's defaults. */
function settingsTable(rows: { setting: NginxSetting; row: Row }[]): string {
  if (!rows.length) return '';
  const kb = (r: Row) => ((r.memory.nginx?.mb ?? Number.NaN) * 1000) / r.report.connections.peak;
  const base = kb(rows[0].row);
  return `
## nginx settings: what each saves per held WSS connection

Each row holds ${rows[0].row.size.toLocaleString('en')} connections for ${o.settingsHold} on a fresh topology, as above, with one nginx
setting changed (\`proxy.tlsBufferBytes\`, \`proxy.relayBufferBytes\`); nginx's whole resident memory over the connections.

| setting | opened | nginx MB | nginx KB/conn | saved KB/conn |
| --- | ---: | ---: | ---: | ---: |
${rows
  .map(
    ({ setting, row }) =>
      `| ${setting.name} | ${row.report.connections.opened} | ${row.memory.nginx?.mb ?? '—'} | ${kb(row).toFixed(1)} | ${(base - kb(row)).toFixed(1)} |`,
  )
  .join('\n')}

Where the rest goes, by heaptrack attached to one worker holding 1,968 of 4,000 connections (2026-12-06; \`heaptrack -p
<worker pid>\` during \`npm run bench:ceiling -- --sizes 4000 --traffic '' --settings ''\`, nginx's defaults): 47 KB a
connection of live heap (\`malloc_trim\` gives nothing back), of which ssl_buffer_size's buffer 16.4 KB, OpenSSL 3.0 about
12 KB (\`SSL_new\` 7.6 KB, the record ciphers 2 KB), two 4 KB pools (the request's and the connection's) 8.2 KB, the two relay
buffers (proxy_buffer_size, one each way) 8.2 KB, the request header buffer 1 KB. OpenSSL's share and the pools stay whatever
the settings: with TLS on nginx 1.22 and OpenSSL 3.0 the settings cannot bring the heap under about 23 KB a connection
(12 + 8.2 + two 1 KB relay buffers + 1), before the allocator's own overhead and nginx's baseline. Nor do the pools'
directives move them: \`request_pool_size 1k\` with \`connection_pool_size 256\` (by hand, 2026-12-07: the rendered
nginx.conf edited and reloaded, 10,000 connections held at each, two rounds alternating; resident memory in the hold less
before the ramp, over the connections) held 36.1 and 36.7 KB a
connection against 35.1 and 36.4 KB at nginx's defaults, so the topology leaves them at the defaults.

A token in the upgrade's header (auth's \`Authorization: Bearer\`, the load client's default with \`--auth\`) costs nginx
about 5 KB more a held connection (by hand, 2026-12-07: nginx's resident memory 15 s into the hold of
\`npm run local -- --duration 25s\` with 1,000 connections, two runs each: 68.3 and 68.3 MB without \`--auth\`, 73.5 and
73.5 MB with it). heaptrack on one worker says where: the proxied request carries the token, so the request's pool takes a third
4 KB block, and a request over the 1 KB \`client_header_buffer_size\` takes an 8 KB large header buffer. Neither directive
helps: \`request_pool_size 8k\` held 76.9 MB with tokens, \`client_header_buffer_size 2k\` 73.1 MB with tokens and 69.1 MB
without. A token sent in the first message costs nginx nothing: it is relayed as a frame (\`--auth --token-in message\`: 68.1 MB,
against 68.0 MB without \`--auth\` in the same sitting).
`;
}

function markdown(rows: Row[], trafficRows: Row[], startedAt: Date, settingRows: { setting: NginxSetting; row: Row }[] = []): string {
  const kb = (mb: number | undefined, n: number) => (mb === undefined || !n ? '—' : ((mb * 1000) / n).toFixed(1));
  const parts = ['load client', 'nginx', 'replicas', 'nats-server'];
  return (
    `# The machine's ceiling: WSS connections held through nginx to 3 replicas

Produced by \`npm run bench:ceiling\` on ${startedAt.toISOString().slice(0, 10)} (linux, ${cpus().length} cores, ` +
    `${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, nginx ${nginxVersion()}).
Each size on a fresh local topology (nginx with TLS, 3 replicas, nats-server idle), ramped at ${DEFAULT_STAGE.rampRate}/s and held ${o.hold},
with no application traffic (no echoes, no publications; the server pings each connection every 30 s), so this is what holding
connections costs. The per-process open-file ceiling here is 20,000 (hard, even for root): the topology sizes nginx's workers
and the client's processes from it, and above 20,000 connections the client spreads over loopback source addresses.

| connections | opened | failed (by class) | peak | all open for (s) | opening achieved (/s) | nginx workers / client processes | nginx limits (error log) | generator |
| ---: | ---: | --- | ---: | ---: | ---: | --- | --- | --- |
${rows
  .map((r) => {
    const fails =
      Object.entries(r.report.errors)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || '0';
    const limits =
      Object.entries(r.nginxLimits)
        .map(([k, v]) => `${k} ×${v}`)
        .join(', ') || 'none';
    return (
      `| ${r.size.toLocaleString('en')} | ${r.report.connections.opened} | ${r.report.connections.failed} (${fails}) | ` +
      `${r.report.connections.peak} | ${heldAtFull(r)} | ${r.report.opening.achievedPerSecond ?? '—'} | ${r.nginxWorkers} / ` +
      `${r.report.generator.workers} | ${limits} | ${r.report.generator.trustworthy ? 'trustworthy' : 'generator lagged'} |`
    );
  })
  .join('\n')}

## Memory at the end of the hold (resident, per part; per connection held)

| connections | ${parts.map((p) => `${p} MB`).join(' | ')} | ${parts
      .slice(0, 3)
      .map((p) => `${p} KB/conn`)
      .join(' | ')} |
| ---: | ${parts.map(() => '---:').join(' | ')} | ${parts
      .slice(0, 3)
      .map(() => '---:')
      .join(' | ')} |
${rows
  .map(
    (r) =>
      `| ${r.size.toLocaleString('en')} | ${parts.map((p) => r.memory[p]?.mb ?? '—').join(' | ')} | ${parts
        .slice(0, 3)
        .map((p) => kb(r.memory[p]?.mb, r.report.connections.peak))
        .join(' | ')} |`,
  )
  .join('\n')}

KB per connection is the part's whole resident memory over the connections held (baselines included: the difference between
two rows is the marginal cost). A replica holds a third of them: its own share is the replicas' figure × 3 per connection it holds.
${settingsTable(settingRows)}${trafficTable(trafficRows)}`
  );
}

async function main(): Promise<number> {
  const startedAt = new Date();
  const rows: Row[] = [];
  const sizes = (text: string) => text.split(',').filter(Boolean).map(Number);
  const settingRows: { setting: NginxSetting; row: Row }[] = [];
  for (const size of sizes(String(o.settings)))
    for (const setting of NGINX_SETTINGS) settingRows.push({ setting, row: await measure(size, false, setting) });
  for (const size of sizes(String(o.sizes))) rows.push(await measure(size));
  const trafficRows: Row[] = [];
  for (const size of sizes(String(o.traffic))) trafficRows.push(await measure(size, true));
  const md = markdown(rows, trafficRows, startedAt, settingRows);
  mkdirSync(dirname(resolve(o.out)), { recursive: true });
  writeFileSync(resolve(o.out), md);
  console.log(md);
  // The claim: every size opened and held (two minutes at the full count) with no failure.
  return rows.every((r) => r.report.connections.failed === 0 && r.report.connections.peak === r.size && heldAtFull(r) >= 120)
    ? EXIT.ok
    : EXIT.failed;
}

runEntryPoint(main);
