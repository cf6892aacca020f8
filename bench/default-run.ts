/**
 * `npm run bench:default-run` (not in CI): the README's default run, `npm run local -- --report
 * r.json`, three times in a row, and once forced past the load client (3,000 connections asked at
 * 2,000/s). Checks what issue 14 asks of the default (trustworthy, connect p99 ≤ 150 ms, RTT p99
 * ≤ 25 ms, every time) and that the forced run is INCONCLUSIVE, and writes
 * docs/benchmarks/default-run.md with the exact commands.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { Command } from 'commander';
import { benchLocalRun } from './local-run';
import type { LoadReport } from '../app/src/client/report-model';
import { EXIT, runEntryPoint } from '../app/src/shared/exit';
import { DEFAULT_STAGE } from '../app/src/shared/profile';
import { nginxVersion } from '../local/run';

const program = new Command('bench:default-run')
  .option('--runs <n>', 'default runs in a row', '3')
  .option('--out <file>', 'Markdown output', 'docs/benchmarks/default-run.md')
  .parse();
const o = program.opts();

/** The goals of issue 14 for the default run. */
const GOAL = { connectP99Ms: 150, rttP99Ms: 25 };

const local = (args: string[]) => benchLocalRun(args, 'default-run-');

async function main(): Promise<number> {
  const startedAt = new Date();
  const runs: { code: number; report: LoadReport }[] = [];
  for (let i = 0; i < Number(o.runs); i++) {
    console.error(`default-run: run ${i + 1} of ${o.runs}`);
    runs.push(await local([]));
  }
  console.error('default-run: forced past the client');
  const forced = await local(['--connections', '3000', '--ramp-rate', '2000']);
  const meets = (r: LoadReport) =>
    r.generator.trustworthy && r.latency.connect.p99 <= GOAL.connectP99Ms && r.latency.rtt.p99 <= GOAL.rttP99Ms;
  const allMet = runs.every((r) => r.code === EXIT.ok && meets(r.report));
  const forcedInconclusive = forced.code === EXIT.inconclusive && forced.report.verdict === 'INCONCLUSIVE';
  const row = (name: string, { code, report: r }: { code: number; report: LoadReport }) =>
    `| ${name} | ${code} ${r.verdict} | ${r.generator.trustworthy ? 'yes' : 'no'} | ${r.opening.askedPerSecond} / ` +
    `${r.opening.achievedPerSecond ?? '—'} | ${r.latency.connect.p50} | ${r.latency.connect.p99} | ` +
    `${r.latency.handshakeQueue.p99} | ${r.latency.rtt.p50} | ${r.latency.rtt.p99} | ${r.generator.eventLoopLagP99Ms} / ` +
    `${r.generator.cpuPercentMax}% | ${r.delivery.crossReplica} | ${r.delivery.accounted ? r.delivery.lost : 'n/a'} |`;
  const md = `# The default run: trustworthy, three times in a row

Produced by \`npm run bench:default-run\` on ${startedAt.toISOString().slice(0, 10)} (linux, ${cpus().length} cores, Node ${process.version}, nginx ${nginxVersion()}).
Each row is \`npm run local -- --report r.json\` as the README gives it: nginx with TLS, 3 replicas,
nats-server, and the load client (one process) all on this machine; ${DEFAULT_STAGE.connections} connections ramped at
${DEFAULT_STAGE.rampRate}/s, held 20 s, at most 64 handshakes in flight. The last row is forced past the
client: \`npm run local -- --connections 3000 --ramp-rate 2000\`.

**Goal** (issue 14): trustworthy, connect p99 ≤ ${GOAL.connectP99Ms} ms and RTT p99 ≤ ${GOAL.rttP99Ms} ms, every run: **${allMet ? 'met' : 'not met'}**.
The forced run is INCONCLUSIVE (exit 4): **${forcedInconclusive ? 'yes' : 'no'}**.

| run | exit, verdict | trustworthy | opening asked / achieved (/s) | connect p50 | connect p99 | slot wait p99 | RTT p50 | RTT p99 | client loop lag p99 (ms) / CPU max | cross-replica | lost |
| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |
${runs.map((r, i) => row(`default ${i + 1}`, r)).join('\n')}
${row('forced: 3,000 at 2,000/s', forced)}

Times in ms. The forced run's bottleneck, as the report names it: ${forced.report.opening.bottleneck ?? 'none'}.

Why 250/s: at 1,000/s (the earlier default of \`npm run local\`) the client queued its own
handshakes and the run measured that queue (connect p50 1–2 s, RTT p99 over 400 ms, generator not
trustworthy: issue 14). With the handshake cap, 500/s still saturated the client during the ramp
(measured once here: achieved 443/s, event-loop lag p99 95 ms, CPU 102%, connect p99 205 ms, RTT
p99 88 ms: INCONCLUSIVE); 250/s keeps every measurement the system's with nginx, three replicas
and nats-server sharing the two cores.
`;
  mkdirSync(dirname(resolve(o.out)), { recursive: true });
  writeFileSync(resolve(o.out), md);
  console.log(md);
  return allMet && forcedInconclusive ? EXIT.ok : EXIT.failed;
}

runEntryPoint(main);
