import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { basename, dirname, resolve } from 'node:path';
import WebSocket from 'ws';
import { CENTRIFUGE_PATH } from '../app/src/shared/centrifuge';
import { EXIT, runEntryPoint } from '../app/src/shared/exit';
import type { ServerMessage } from '../app/src/shared/protocol';
import { serverSchema } from '../app/src/topology';
import { ROOT } from '../local/run';
import { probeRow, until } from './replica-probe';

/**
 * `npm run bench:protocols` (not in CI): where a replica's CPU per delivery goes on each client
 * protocol, the native one and Centrifugo's. The fan-out bench measures the whole system through
 * nginx and TLS, where Centrifugo's rows cost more in every part; this takes the replica alone
 * (bench/replica-probe.ts, delivering through nats-server) with CONNECTIONS (10,000) subscribers on
 * loopback over 10 topics, ROUNDS rounds of one small publication per topic (the fan-out bench's
 * size), RUNS times each protocol interleaved, then one more of each under the V8 profiler (the
 * delivery window only) for the functions the time goes to. Writes docs/benchmarks/protocols.md.
 */
const N = Number(process.env.CONNECTIONS ?? 10_000);
const TOPICS = 10;
const ROUNDS = Number(process.env.ROUNDS ?? 60);
const RUNS = Number(process.env.RUNS ?? 3);
const PROTOCOLS = ['native', 'centrifuge'] as const;
type Protocol = (typeof PROTOCOLS)[number];
/** The fan-out bench's notification: the load client's default 128-byte payload. */
const DATA = { text: 'x'.repeat(128) };

/** A subscriber on either protocol: counts publications and the bytes they came in. */
class Subscriber {
  received = 0;
  constructor(readonly ws: WebSocket) {}
  get bytesRead(): number {
    return (this.ws as unknown as { _socket: { bytesRead: number } })._socket.bytesRead;
  }
}

function openNative(base: string, topic: string | undefined): Promise<Subscriber> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base}${serverSchema.parse({}).path}`, { perMessageDeflate: false });
    const sub = new Subscriber(ws);
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as ServerMessage;
      if (m.type === 'hello' && topic === undefined) resolve(sub);
      else if (m.type === 'hello') ws.send(JSON.stringify({ type: 'subscribe', topic }));
      else if (m.type === 'subscribed') resolve(sub);
      else if (m.type === 'notification') sub.received++;
    });
    ws.on('error', reject);
  });
}

/** Centrifugo's protocol as its SDK speaks it (JSON, a reply or push per line; `{}` pings answered). */
function openCentrifuge(base: string, topic: string): Promise<Subscriber> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base}${CENTRIFUGE_PATH}`, { perMessageDeflate: false });
    const sub = new Subscriber(ws);
    ws.on('open', () => ws.send(JSON.stringify({ id: 1, connect: {} })));
    ws.on('message', (data) => {
      for (const line of String(data).split('\n')) {
        const m = JSON.parse(line) as { id?: number; push?: { pub?: unknown }; error?: unknown };
        if (m.error) reject(new Error(`centrifuge: ${JSON.stringify(m.error)}`));
        else if (m.id === 1) ws.send(JSON.stringify({ id: 2, subscribe: { channel: topic } }));
        else if (m.id === 2) resolve(sub);
        else if (m.push?.pub) sub.received++;
        else if (m.id === undefined && !m.push) ws.send('{}');
      }
    });
    ws.on('error', reject);
  });
}

interface Row {
  protocol: Protocol;
  run: string;
  serverUsPerDelivery: number;
  clientUsPerDelivery: number;
  bytesPerDelivery: number;
  seconds: number;
  profile?: string;
}

async function measure(protocol: Protocol, run: string, profile: boolean): Promise<Row> {
  return probeRow({ compression: 'off' }, async (probe, subscribers: Subscriber[]) => {
    const base = `ws://127.0.0.1:${await probe.port}`;
    for (let i = 0; i < N; i += 250) {
      const batch = Array.from({ length: Math.min(250, N - i) }, (_, j) => `t${(i + j) % TOPICS}`);
      subscribers.push(...(await Promise.all(batch.map((t) => (protocol === 'native' ? openNative(base, t) : openCentrifuge(base, t))))));
    }
    const publisher = await openNative(base, undefined);
    const readBefore = subscribers.reduce((a, s) => a + s.bytesRead, 0);
    const deliver = async () => {
      for (let r = 0; r < ROUNDS; r++) {
        for (let k = 0; k < TOPICS; k++)
          publisher.ws.send(JSON.stringify({ type: 'publish', topic: `t${k}`, id: `${r}-${k}`, data: DATA }));
        await until(() => subscribers.every((s) => s.received >= r + 1), 60_000, `round ${r + 1} delivered`);
      }
    };
    const serverBefore = (await probe.ask('cpu')).cpuUs;
    const clientBefore = process.cpuUsage();
    const startedAt = performance.now();
    let profileFile: string | undefined;
    if (profile) profileFile = await probe.profiled(deliver);
    else await deliver();
    const client = process.cpuUsage(clientBefore);
    const serverAfter = (await probe.ask('cpu')).cpuUs;
    const deliveries = subscribers.reduce((a, s) => a + s.received, 0);
    if (deliveries !== N * ROUNDS) throw new Error(`${protocol}: ${deliveries} deliveries, ${N * ROUNDS} owed`);
    publisher.ws.terminate();
    return {
      protocol,
      run,
      serverUsPerDelivery: round1((serverAfter - serverBefore) / deliveries),
      clientUsPerDelivery: round1((client.user + client.system) / deliveries),
      bytesPerDelivery: Math.round((subscribers.reduce((a, s) => a + s.bytesRead, 0) - readBefore) / deliveries),
      seconds: round1((performance.now() - startedAt) / 1000),
      profile: profileFile,
    };
  });
}

const round1 = (v: number) => Math.round(v * 10) / 10;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  hitCount?: number;
}

/** A V8 profile's self time per function, as shares of all samples (idle excluded), largest first. */
function selfTimes(file: string, top: number): { name: string; share: number }[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[] };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const counts = new Map<string, number>();
  let total = 0;
  for (const id of profile.samples) {
    const { callFrame: f } = byId.get(id)!;
    if (f.functionName === '(idle)') continue;
    // The file, not the line: tsx runs TypeScript compiled on the fly, whose lines are not the source's.
    const where = f.url ? ` (${basename(f.url)})` : '';
    const name = `${f.functionName || '(anonymous)'}${where}`;
    counts.set(name, (counts.get(name) ?? 0) + 1);
    total++;
  }
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, n]) => ({ name, share: round1((n / total) * 100) }));
}

function markdown(rows: Row[]): string {
  const measured = rows.filter((r) => !r.profile);
  const mean = (p: Protocol, f: (r: Row) => number) => {
    const of = measured.filter((r) => r.protocol === p);
    return round1(of.reduce((a, r) => a + f(r), 0) / of.length);
  };
  const [native, centrifuge] = PROTOCOLS.map((p) => mean(p, (r) => r.serverUsPerDelivery));
  const profiles = rows.filter((r) => r.profile);
  return `# Client protocols: where a replica's CPU per delivery goes

Produced by \`npm run bench:protocols\` on ${new Date().toISOString().slice(0, 10)} (${cpus().length} cores, Node ${process.version}, nats-server 2.9).
One replica alone in a process, delivering through nats-server; ${N.toLocaleString('en')} subscribers on loopback (no nginx, no TLS)
over ${TOPICS} topics, each speaking one protocol; a publisher sends ${ROUNDS} rounds of one publication per topic (a 128-byte
payload, as the fan-out bench's), a round delivered before the next: ${(N * ROUNDS).toLocaleString('en')} deliveries per row, ${RUNS} run(s) of
each protocol interleaved. **server** is the replica's CPU from the first publication to the last delivery, over the
deliveries; **client** is the subscribers' process (parsing every frame); **bytes** what a subscriber read per delivery.

| protocol | run | server µs/delivery | client µs/delivery | bytes/delivery | seconds |
| --- | --- | ---: | ---: | ---: | ---: |
${rows.map((r) => `| ${r.protocol} | ${r.run} | ${r.serverUsPerDelivery} | ${r.clientUsPerDelivery} | ${r.bytesPerDelivery} | ${r.seconds} |`).join('\n')}

**The replica's CPU per delivery**, the mean of the unprofiled runs: native ${native} µs, Centrifugo's ${centrifuge} µs
(×${(centrifuge / native).toFixed(2)}).

## Where it goes (self time, the V8 profiler over the delivery window of the profiled runs)

Shares of the replica's busy samples (idle left out); the profiler's own cost makes those runs' figures higher.

${profiles
  .map(
    (r) => `### ${r.protocol}

| function | share of busy samples |
| --- | ---: |
${selfTimes(r.profile!, 15)
  .map((f) => `| \`${f.name.replace(/\|/g, '\\|')}\` | ${f.share}% |`)
  .join('\n')}
`,
  )
  .join('\n')}`;
}

async function main(): Promise<number> {
  const rows: Row[] = [];
  for (let i = 1; i <= RUNS; i++)
    for (const protocol of PROTOCOLS) {
      console.error(`protocols: ${protocol}, run ${i}: ${N} subscribers`);
      rows.push(await measure(protocol, String(i), false));
      console.log(JSON.stringify(rows.at(-1)));
    }
  for (const protocol of PROTOCOLS) {
    console.error(`protocols: ${protocol}, profiled`);
    rows.push(await measure(protocol, 'profiled', true));
  }
  const md = markdown(rows);
  const out = resolve(ROOT, process.env.OUT ?? 'docs/benchmarks/protocols.md');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, md);
  console.log(md);
  for (const r of rows) if (r.profile) rmSync(r.profile, { force: true });
  return EXIT.ok;
}

runEntryPoint(main);
