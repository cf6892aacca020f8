/**
 * `npm run bench:client`: connections per second and memory per connection of the load client,
 * side by side with a bare `ws` client in the same run (ws and wss, with and without
 * compression), and the largest stable connection count on this machine. Writes a Markdown
 * table to docs/benchmarks/client.md and prints it.
 */
import { fork } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Command } from 'commander';
import { EXIT, runEntryPoint } from '../app/src/shared/exit';
import { defineTopology, withoutAuth } from '../app/src/topology';
import { runLoad, workersFor } from '../app/src/client/coordinator';
import { parseSourceAddresses, sourceAddressesNeeded } from '../app/src/client/options';
import { nginxVersion, ROOT, startLocalRun } from '../local/run';
import { median } from './stats';
import { IDENTITY_CALLS, IDENTITY_ROUNDS, identityCheckCost, type IdentityCheckCost } from './tls-identity';

const program = new Command('bench:client')
  .option('--ws-connections <n>', 'connections per probe over ws://', '3000')
  .option('--wss-connections <n>', 'connections per probe over wss://', '1500')
  .option('--rounds <n>', 'rounds (the median is reported)', '3')
  .option('--stable <list>', 'connection counts to try holding for 10 s (empty: skip)', '10000,20000')
  .option('--out <file>', 'Markdown output', 'docs/benchmarks/client.md')
  .parse();
const o = program.opts();

/**
 * The stable step's opening rate: under what this machine's TLS sustains through nginx with the
 * client beside it (the wss probes: 290–410/s on 2026-12-07; at 1,000/s that day 10,000 did not
 * open within the step, so it measured the opening rate, not what is held).
 */
const STABLE_RAMP_RATE = 300;
/** Handshakes in flight, in the probes and in the stable step alike. */
const IN_FLIGHT = 200;

type ProbeResult = { open: number; failed: number; perSecond: number; rssPerConnKB: number; heapPerConnKB: number };

function probe(kind: 'ours' | 'bare', url: string, n: number, compression: boolean, ca?: Buffer): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const child = fork(join(__dirname, 'probe.ts'), [], {
      execArgv: ['--import', 'tsx', '--expose-gc'],
      env: { ...process.env, PROBE: JSON.stringify({ kind, url, n, inFlight: IN_FLIGHT, compression, ca: ca?.toString('base64') }) },
    });
    child.once('message', (m) => resolve(m as ProbeResult));
    child.once('exit', (code) => code !== 0 && reject(new Error(`probe exited ${code}`)));
  });
}

async function main() {
  const version = nginxVersion();
  if (!version) throw new Error('nginx is required (apt-get install nginx-light)');
  const stableSteps = String(o.stable).split(',').filter(Boolean).map(Number);
  const peak = Math.max(20_000, ...stableSteps);
  const topology = defineTopology(
    withoutAuth({
      replicas: 3,
      server: { compression: 'offered' },
      proxy: { nginxVersion: version, targetConnections: peak, limits: { connectionsPerAddress: 0, handshakesPerSecond: 0 } },
      load: { stages: [{ connections: 10, rampRate: 10, holdMs: 0 }] },
    }),
  );
  const local = await startLocalRun(topology);
  const ca = readFileSync(local.caFile);
  // The same topology with an RSA-2048 certificate (kept apart from the ECDSA one).
  const rsaTopology = defineTopology({ ...topology, tls: { ...topology.tls, dir: 'certs/generated-rsa' } });
  const rsa = await startLocalRun(rsaTopology, { keyAlgorithm: 'rsa' });
  const rsaCa = readFileSync(rsa.caFile);
  const wsUrl = `ws://127.0.0.1:${local.replicas[0].port}${topology.server.path}`;
  const rows: string[] = [];
  try {
    const identity = { ecdsa: await identityCheckCost(local.url, ca), rsa: await identityCheckCost(rsa.url, rsaCa) };
    const cases: { scheme: string; url: string; n: number; compression: boolean; ca?: Buffer }[] = [
      { scheme: 'ws', url: wsUrl, n: Number(o.wsConnections), compression: false },
      { scheme: 'ws', url: wsUrl, n: Number(o.wsConnections), compression: true },
      { scheme: 'wss', url: local.url, n: Number(o.wssConnections), compression: false },
      { scheme: 'wss', url: local.url, n: Number(o.wssConnections), compression: true },
      { scheme: 'wss (RSA-2048)', url: rsa.url, n: Number(o.wssConnections), compression: false, ca: rsaCa },
    ];
    for (const c of cases) {
      const results: Record<'ours' | 'bare', ProbeResult[]> = { ours: [], bare: [] };
      for (let r = 0; r < Number(o.rounds); r++) {
        // Alternate the order so neither side always runs on a warmer machine.
        for (const kind of r % 2 ? (['ours', 'bare'] as const) : (['bare', 'ours'] as const)) {
          results[kind].push(await probe(kind, c.url, c.n, c.compression, c.scheme.startsWith('wss') ? (c.ca ?? ca) : undefined));
        }
      }
      const m = (k: 'ours' | 'bare', f: keyof ProbeResult) => median(results[k].map((x) => x[f]));
      const failed = results.ours.concat(results.bare).reduce((a, x) => a + x.failed, 0);
      rows.push(
        `| ${c.scheme}${c.compression ? ' + deflate' : ''} | ${c.n} | ${m('ours', 'perSecond')} | ${m('bare', 'perSecond')} | ` +
          `${(m('ours', 'perSecond') / m('bare', 'perSecond')).toFixed(2)} | ${m('ours', 'rssPerConnKB')} | ` +
          `${m('bare', 'rssPerConnKB')} | ${m('ours', 'heapPerConnKB')} | ${m('bare', 'heapPerConnKB')} | ${failed} |`,
      );
      console.log(rows[rows.length - 1]);
    }

    const stable: string[] = [];
    for (const n of stableSteps) {
      const started = Date.now();
      const sources = sourceAddressesNeeded(n);
      const profile = defineTopology(
        withoutAuth({
          replicas: 3,
          proxy: topology.proxy,
          load: {
            stages: [{ connections: n, rampRate: STABLE_RAMP_RATE, holdMs: 10_000 }],
            senderFraction: 0.01,
            messageRate: 1,
            topics: 0,
            publishRate: 0,
            reconnect: { enabled: false },
            maxDurationMs: 600_000,
            // As many in flight as the probes above: this step measures how many connections are held,
            // and the default 64 would make it measure how fast the handshakes complete.
            maxHandshakesInFlight: IN_FLIGHT,
            sourceAddresses: sources ? parseSourceAddresses(String(sources)) : [],
          },
        }),
      ).load;
      const result = await runLoad({ url: local.url, ca, insecure: false, workers: workersFor(profile), profile });
      const errors =
        Object.entries(Object.fromEntries(result.stats.errors))
          .map(([k, v]) => `${k}=${v}`)
          .join(' ') || 'none';
      const unexpected = [...result.stats.closes].reduce((a, [, [, u]]) => a + u, 0);
      const ok = result.stats.counters.opened === n && result.stats.counters.failed === 0 && unexpected === 0;
      stable.push(
        `| ${n} | ${result.generator.workers} | ${Math.max(1, sources)} | ${result.stats.counters.opened} | ` +
          `${result.stats.counters.failed} | ${errors} | ${unexpected} | ${result.peak} | ${((Date.now() - started) / 1000).toFixed(0)} s | ${ok ? 'stable' : 'NOT stable'} |`,
      );
      console.log(stable[stable.length - 1]);
      if (!ok) break;
    }

    const md = `# Load client benchmark

Produced by \`npm run bench:client\` on ${new Date().toISOString().slice(0, 10)} (${process.platform}, ${require('node:os').cpus().length} cores, Node ${process.version}, nginx ${version}).
Each probe runs in its own process, opens the connections with at most ${IN_FLIGHT} handshakes in flight
and reports the opening rate and the memory each open connection costs (RSS and heap+external
deltas after a forced GC). "ours" is the load client's VirtualUser (timing hooks, stats);
"bare" is a plain \`ws\` client, the reference. Median of ${o.rounds} rounds, run side by side
(alternating order). ws goes straight to one replica; wss goes through nginx (TLS 1.3, ECDSA P-256 unless marked RSA-2048).
No messages flow in the probes, so deflate's zlib streams do not exist yet: what compression costs once
messages flow is in [compression.md](compression.md).

| case | connections | ours conn/s | bare conn/s | ratio | ours RSS KB/conn | bare RSS KB/conn | ours heap KB/conn | bare heap KB/conn | failed |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.join('\n')}

## Node's identity check
After OpenSSL has verified the server's chain, Node's TLS client asks for the certificate with its issuers
(\`getPeerCertificate(true)\`, in \`_tls_wrap\`'s onConnectSecure) only to hand it to \`checkServerIdentity\`, which
reads the leaf's names. Measured in this run on one connection to nginx (${IDENTITY_CALLS.toLocaleString('en')} calls of each, median of ${IDENTITY_ROUNDS}):
${identityLine('ECDSA P-256', identity.ecdsa)}; ${identityLine('RSA-2048', identity.rsa)}. A bare \`ws\` client pays the
first on every full handshake; the load client answers with the leaf (client/virtual-user.ts), which still has the
name checked (test/integration/connector.test.ts). It was the client's largest single item in a connect's CPU profile.

## Largest stable connection count
wss through nginx (${topology.proxy.workerProcesses} workers), 3 replicas, ramp ${STABLE_RAMP_RATE}/s with at most ${IN_FLIGHT} handshakes in flight, hold 10 s, 1% senders at 1 msg/s; stable = every
connection opened, no failure, no unexpected close. One source address reaches one nginx port through
at most ~28,000 ephemeral ports (32768–60999), so above 20,000 the client spreads over 127.0.N.1 addresses
(measured without that: 30,000 stopped at 28,227 opened). A step that opened fewer than asked with no failure and no
error ran out of its time: the client and nginx opened slower than the ramp asked, on cores they share.

| target | client processes | source addresses | opened | failed | errors | unexpected closes | peak | wall time | verdict |
| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |
${stable.join('\n')}
`;
    const out = resolve(ROOT, o.out);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, md);
    console.log(`\nwrote ${o.out}`);
  } finally {
    await Promise.all([local.stop(), rsa.stop()]);
  }
}

function identityLine(certificate: string, cost: IdentityCheckCost): string {
  return `${certificate}, ${cost.withIssuersUs.toFixed(0)} µs with the issuers against ${cost.leafUs.toFixed(0)} µs for the leaf alone`;
}

runEntryPoint(async () => {
  await main();
  return EXIT.ok;
});
