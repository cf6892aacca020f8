import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { probeRow, until } from './replica-probe';
import { createDelta } from 'fossil-delta';
import WebSocket from 'ws';
import { DeltaDecoder } from '../app/src/client/deltas';
import { Payload } from '../app/src/server/deflate-once';
import { EXIT, runEntryPoint } from '../app/src/shared/exit';
import type { ServerMessage } from '../app/src/shared/protocol';
import { webhookSequence, type WebhookExample } from '../app/src/shared/webhook-examples';
import { EVENTS, chosenSettings, type Setting } from './compression-settings';
import { measurePush, pushSection, type PushSpec } from './compression-push';
import { FANOUT_PUBLISH_RATE as FANOUT_RATE, type Row } from './fanout-run';
import { parseDuration } from '../app/src/shared/duration';
import { ROOT } from '../local/run';

/**
 * `npm run bench:compression` (not in CI): what each compression setting costs and saves on real
 * notifications (GitHub webhook payloads, @octokit/webhooks-examples), in two parts. The probe: one
 * replica alone in a process, delivering through nats-server, to CONNECTIONS (10,000) subscribers
 * over 10 topics; a publisher sends ROUNDS rounds of one payload per topic, each topic walking the
 * event sequence in order (one repository per topic). Per setting: the replica's RSS per
 * connection, CPU per delivery in the replica and in the client (which parses every notification
 * and rebuilds every delta), bytes per delivery and per publication. Then through nginx
 * (compression-push.ts): push latency and CPU per part at PUSH_RATE (2) publications/s for PUSH_HOLD.
 * PARTS=probe|nginx runs one part, SETTINGS a few rows; OUT (docs/benchmarks/compression.md).
 */
const N = Number(process.env.CONNECTIONS ?? 10_000);
const TOPICS = 10;
const ROUNDS = Number(process.env.ROUNDS ?? 12);
/** How long the replica's idle CPU (connections held, nothing sent) is measured. */
const IDLE_MS = 5_000;
const SEQUENCE = webhookSequence(EVENTS);
/** The settings also run at the fan-out bench's rate: none, and the default. */
const SATURATED = ['off', 'deflate once'];

/** A subscriber: counts notifications and their bytes, parses each, rebuilds deltas. */
class Subscriber {
  received = 0;
  failures = 0;
  readonly decoder = new DeltaDecoder();
  constructor(readonly ws: WebSocket) {}
  get bytesRead(): number {
    return (this.ws as unknown as { _socket: { bytesRead: number } })._socket.bytesRead;
  }
  get bytesWritten(): number {
    return (this.ws as unknown as { _socket: { bytesWritten: number } })._socket.bytesWritten;
  }
  onNotification(m: Extract<ServerMessage, { type: 'notification' }>): void {
    this.received++;
    if (m.json === undefined && m.delta === undefined) return;
    try {
      JSON.parse(Buffer.from(this.decoder.decode(m.topic, m).text).toString());
    } catch {
      this.failures++;
    }
  }
}

function open(url: string, setting: Setting, topic: string | undefined): Promise<Subscriber> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: setting.clientDeflate });
    const sub = new Subscriber(ws);
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as ServerMessage;
      if (m.type === 'hello' && topic === undefined) resolve(sub);
      else if (m.type === 'hello') ws.send(JSON.stringify({ type: 'subscribe', topic, ...(setting.delta ? { delta: 'fossil' } : {}) }));
      else if (m.type === 'subscribed') resolve(sub);
      else if (m.type === 'notification') sub.onNotification(m);
    });
    ws.on('error', reject);
  });
}

/** The payload topic `k` publishes in round `r`: one repository walking the sequence in order. */
const payloadOf = (k: number, r: number): WebhookExample => SEQUENCE[(k * ROUNDS + r) % SEQUENCE.length];

async function measure(setting: Setting) {
  return probeRow(setting.server, async (probe, subscribers: Subscriber[]) => {
    const url = `ws://127.0.0.1:${await probe.port}/ws-notifications`;
    const before = await probe.ask();
    for (let i = 0; i < N; i += 250)
      subscribers.push(
        ...(await Promise.all(Array.from({ length: Math.min(250, N - i) }, (_, j) => open(url, setting, `t${(i + j) % TOPICS}`)))),
      );
    const publisher = await open(url, setting, undefined);
    const negotiated = subscribers[0].ws.extensions || 'none';
    const readBefore = subscribers.reduce((a, s) => a + s.bytesRead, 0);
    const writtenBefore = publisher.bytesWritten;
    // What the replica burns holding the connections alone (pings, sweeps): a row whose client is
    // slower takes longer, and this part of its CPU is time, not deliveries.
    const idleFrom = await probe.ask('cpu');
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const serverCpu = (await probe.ask('cpu')).cpuUs;
    const idleUsPerMs = (serverCpu - idleFrom.cpuUs) / IDLE_MS;
    const clientCpu = process.cpuUsage();
    const startedAt = performance.now();
    let acked = 0;
    publisher.ws.on('message', (data) => String(data).includes('"published"') && acked++);
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < TOPICS; k++) {
        const { event, example, payload } = payloadOf(k, r);
        publisher.ws.send(JSON.stringify({ type: 'publish', topic: `t${k}`, id: `${r}-${k}`, data: { event, example, payload } }));
      }
      // A round at a time, so no subscriber's queue grows past its bound.
      await until(() => subscribers.every((s) => s.received >= r + 1), 60_000, `round ${r + 1} delivered`);
    }
    await until(() => acked === ROUNDS * TOPICS, 10_000, 'every publication acknowledged');
    const cpu = process.cpuUsage(clientCpu);
    const elapsedMs = performance.now() - startedAt;
    const serverCpuAfter = (await probe.ask('cpu')).cpuUs;
    const after = await probe.ask();
    const deliveries = subscribers.reduce((a, s) => a + s.received, 0);
    const failures = subscribers.reduce((a, s) => a + s.failures, 0);
    if (deliveries !== N * ROUNDS) throw new Error(`${setting.name}: ${deliveries} deliveries, ${N * ROUNDS} owed`);
    if (failures > 0) throw new Error(`${setting.name}: ${failures} notifications did not parse or rebuild`);
    publisher.ws.terminate();
    return {
      setting: setting.name,
      negotiated,
      rssKB: round1((after.rss - before.rss) / N / 1024),
      heapKB: round1((after.heap - before.heap) / N / 1024),
      serverUsPerDelivery: round1((serverCpuAfter - serverCpu) / deliveries),
      serverNetUsPerDelivery: round1((serverCpuAfter - serverCpu - idleUsPerMs * elapsedMs) / deliveries),
      idleCpuPercent: round1(idleUsPerMs / 10),
      seconds: round1(elapsedMs / 1000),
      clientUsPerDelivery: round1((cpu.user + cpu.system) / deliveries),
      bytesPerDelivery: Math.round((subscribers.reduce((a, s) => a + s.bytesRead, 0) - readBefore) / deliveries),
      bytesPerPublication: Math.round((publisher.bytesWritten - writtenBefore) / (ROUNDS * TOPICS)),
    };
  });
}

const round1 = (v: number) => Math.round(v * 10) / 10;

/** Per event type: a notification's bytes, deflated as the server does, as a delta against its topic's previous one, and both. */
function ratiosByEvent() {
  const byEvent = new Map<string, { n: number; raw: number; deflated: number; delta: number; deltaDeflated: number }>();
  for (let k = 0; k < TOPICS; k++) {
    for (let r = 1; r < ROUNDS; r++) {
      const [prev, cur] = [payloadOf(k, r - 1), payloadOf(k, r)];
      const text = (p: WebhookExample) => Buffer.from(JSON.stringify({ event: p.event, example: p.example, payload: p.payload }));
      const raw = text(cur);
      const delta = Buffer.from(createDelta(text(prev), raw));
      const e = byEvent.get(cur.event) ?? { n: 0, raw: 0, deflated: 0, delta: 0, deltaDeflated: 0 };
      e.n++;
      e.raw += raw.length;
      e.deflated += Payload.of(raw).deflated?.length ?? raw.length;
      e.delta += Math.min(delta.length, raw.length);
      e.deltaDeflated += Payload.of(delta.length < raw.length ? delta : raw).deflated?.length ?? delta.length;
      byEvent.set(cur.event, e);
    }
  }
  return [...byEvent].map(([event, e]) => ({
    event,
    count: e.n,
    meanBytes: Math.round(e.raw / e.n),
    deflate: round1(e.raw / e.deflated),
    delta: round1(e.raw / e.delta),
    deltaDeflate: round1(e.raw / e.deltaDeflated),
  }));
}

type ProbeRow = Awaited<ReturnType<typeof measure>>;

function probeSection(rows: ProbeRow[]): string {
  const off = rows.find((r) => r.setting === 'off');
  return `## One replica alone: memory, CPU and bytes

One replica runs alone in a process and delivers through nats-server; ${N.toLocaleString('en')} subscribers over ${TOPICS} topics on
loopback (no nginx, no TLS); a publisher sends ${ROUNDS} rounds of one payload per topic, each topic walking the sequence in order
(one repository per topic), a round delivered before the next: ${(N * ROUNDS).toLocaleString('en')} deliveries per setting.

- **RSS/conn**: the replica's RSS after the deliveries minus before any connection, per connection (after a forced GC);
  differences of a few KB between rows are within the run-to-run noise.
- **server µs/delivery**: the replica's CPU from the first publication to the last delivery, over the deliveries.
  The subscribers' process is the bottleneck, so a row whose client works harder takes longer (**seconds**); **net**
  takes away what the replica burns holding the connections with nothing to send (measured for ${IDLE_MS / 1000} s before,
  the **idle** column, in % of a core) for that long. **× off** compares the net figures.
- **client µs/delivery**: the subscribers' process, which parses every notification and rebuilds every delta (and
  inflates, with deflate): ${N.toLocaleString('en')} connections' deltas in one process.
- **bytes/delivery**: what subscribers read from their sockets (frames included) per delivery; **bytes/publication**:
  what the publisher wrote per publication (compressed by its own ws when deflate is negotiated).

| setting | negotiated | RSS KB/conn | heap+external KB/conn | seconds | idle % | server µs/delivery | net | × off | client µs/delivery | bytes/delivery | bytes/publication |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows
  .map(
    (r) =>
      `| ${r.setting} | ${r.negotiated.replace(/\|/g, '\\|')} | ${r.rssKB} | ${r.heapKB} | ${r.seconds} | ${r.idleCpuPercent} | ${r.serverUsPerDelivery} | ${r.serverNetUsPerDelivery} | ${off ? (r.serverNetUsPerDelivery / off.serverNetUsPerDelivery).toFixed(2) : '—'} | ${r.clientUsPerDelivery} | ${r.bytesPerDelivery.toLocaleString('en')} | ${r.bytesPerPublication.toLocaleString('en')} |`,
  )
  .join('\n')}
`;
}

function ratioSection(): string {
  return `## Compression ratio per event type

Each notification's data (\`{event, example, payload}\`) against what it becomes: deflated as the server deflates
(level 2, memLevel 4, 2^10 window), as a fossil delta against its topic's previous one, and that delta deflated.
${ROUNDS - 1} consecutive pairs per topic.

| event | pairs | mean bytes | deflate | delta | delta + deflate |
| --- | ---: | ---: | ---: | ---: | ---: |
${ratiosByEvent()
  .map((r) => `| ${r.event} | ${r.count} | ${r.meanBytes.toLocaleString('en')} | ${r.deflate}× | ${r.delta}× | ${r.deltaDeflate}× |`)
  .join('\n')}
`;
}

async function main() {
  const settings = chosenSettings();
  // PARTS=probe or PARTS=nginx: one part only.
  const parts = (process.env.PARTS ?? 'probe,nginx').split(',');
  const probeRows: ProbeRow[] = [];
  for (const setting of parts.includes('probe') ? settings : []) {
    console.error(`compression: ${setting.name}: ${N} connections to one replica`);
    probeRows.push(await measure(setting));
    console.log(JSON.stringify(probeRows.at(-1)));
  }
  const spec: PushSpec = {
    subscribers: N,
    topics: TOPICS,
    // The fan-out bench's 24/s with these 16 KB payloads is 380 MB/s of TLS: on this machine the
    // off row opened 8,538 of 10,000 in 90 s and delivered about 10,000/s (docs/compression.md).
    publishRate: Number(process.env.PUSH_RATE ?? 2),
    holdMs: parseDuration(process.env.PUSH_HOLD ?? '90s'),
  };
  const pushRows: Row[] = [];
  for (const setting of parts.includes('nginx') ? settings : []) {
    console.error(`compression: ${setting.name}: ${N} subscribers through nginx`);
    pushRows.push(await measurePush(setting, spec));
  }
  // The fan-out bench's rate, for the default and for no compression: what the machine gives.
  const saturated: Row[] = [];
  const atFanoutRate = { ...spec, publishRate: FANOUT_RATE, partial: true };
  for (const setting of parts.includes('nginx') && spec.publishRate !== FANOUT_RATE
    ? settings.filter((s) => SATURATED.includes(s.name))
    : []) {
    console.error(`compression: ${setting.name}: ${N} subscribers through nginx at ${FANOUT_RATE} publications/s`);
    saturated.push(await measurePush(setting, atFanoutRate));
  }
  const counts = EVENTS.map((e) => `${e} ${SEQUENCE.filter((s) => s.event === e).length}`).join(', ');
  const md = `# Compression on real notifications: memory, CPU, bytes and latency per setting

Produced by \`npm run bench:compression\` on ${new Date().toISOString().slice(0, 10)} (${cpus().length} cores, Node ${process.version}, nats-server 2.9).
Payloads: GitHub webhook payloads from \`@octokit/webhooks-examples\`, the events ${EVENTS.join(', ')}
(${SEQUENCE.length} examples: ${counts}), in the load client's order (the first example of each event, then the second...).
Settings: ${settings.map((s) => s.name).join('; ')}.

${probeRows.length ? probeSection(probeRows) : ''}
${ratioSection()}
${pushRows.length ? pushSection(pushRows, spec, saturated) : ''}`;
  const out = resolve(ROOT, process.env.OUT ?? 'docs/benchmarks/compression.md');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, md);
  console.log(md);
}

runEntryPoint(async () => {
  await main();
  return EXIT.ok;
});
