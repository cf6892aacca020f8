import { EVENTS, type Setting } from './compression-settings';
import { FANOUT_PUBLISH_RATE as FANOUT_RATE, measureFanout, partUs, perDeliveryUs, type Row } from './fanout-run';

/**
 * The through-nginx part of `npm run bench:compression`: each setting on the local topology (nginx
 * with TLS, 3 replicas, nats-server, 2 load-client processes), 10,000 subscribers over 10 topics,
 * the publishers sending the real payloads at PUSH_RATE publications/s. Push latency, what was
 * lost, and the CPU per delivery of each part.
 */
export interface PushSpec {
  subscribers: number;
  topics: number;
  publishRate: number;
  holdMs: number;
  /** Measure even if not all connect (fanout-run.ts `partial`): the fan-out bench's rate, which saturates this machine. */
  partial?: boolean;
}

export async function measurePush(setting: Setting, spec: PushSpec): Promise<Row> {
  return measureFanout({
    mode: setting.name,
    broker: true,
    publishRate: spec.publishRate,
    reach: 1,
    subscribers: spec.subscribers,
    topics: spec.topics,
    rampRate: 500,
    holdMs: spec.holdMs,
    workers: 2,
    partial: spec.partial,
    server: setting.server,
    load: {
      payload: { source: 'github-webhooks', events: EVENTS },
      compression: setting.clientDeflate,
      delta: setting.delta,
    },
  });
}

const ms = (v: number) => v.toFixed(1);

/** The Markdown section for these rows. */
export function pushSection(rows: Row[], spec: PushSpec, saturated: Row[]): string {
  const off = rows.find((r) => r.mode === 'off');
  return `## Through nginx: push latency and CPU per part

Each setting on the local topology: nginx with TLS, 3 replicas, nats-server, 2 load-client processes.
${spec.subscribers.toLocaleString('en')} subscribers over ${spec.topics} topics ramped at 500/s; 1 in 100 of them publishes the webhook payloads
above (each publisher one repository, on its own topic), ${spec.publishRate} publications/s in all (Poisson arrivals), so
${Math.round((spec.publishRate * spec.subscribers) / spec.topics).toLocaleString('en')} deliveries/s are offered. Measured in the hold with everyone connected (${rows.map((r) => r.holdSeconds.toFixed(0)).join(', ')} s).
CPU per delivery counts each part's CPU in that window over the deliveries in it; the load client parses every
notification (and rebuilds every delta, and inflates with deflate) and keeps the delivery ledger.

| setting | deliveries/s offered | deliveries/s (slowest–fastest second) | push p50 ms | push p99 ms | lost | failed connections | client µs | nginx µs | replicas µs | nats µs | total µs | × off |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows
  .map(
    (r) =>
      `| ${r.mode} | ${r.offeredPerSecond.toLocaleString('en')} | ${r.deliveredPerSecond.toLocaleString('en')} (${r.slowestSecond.toLocaleString('en')}–${r.fastestSecond.toLocaleString('en')}) | ` +
      `${ms(r.push.p50)} | ${ms(r.push.p99)} | ${r.report.delivery.lost} | ${r.report.connections.failed} | ` +
      `${partUs(r, 'load client')} | ${partUs(r, 'nginx')} | ${partUs(r, 'replicas')} | ${partUs(r, 'nats-server')} | ${perDeliveryUs(r)} | ` +
      `${off ? (perDeliveryUs(r) / perDeliveryUs(off)).toFixed(2) : '—'} |`,
  )
  .join('\n')}

Generator: ${rows.map((r) => `${r.mode}: ${r.report.generator.trustworthy ? 'trustworthy' : `not trustworthy (${r.report.generator.reasons.join('; ')})`}`).join('; ')}.
${saturated.length ? saturatedSection(saturated, spec) : ''}`;
}

/** The same at the fan-out bench's rate, where the machine runs out before the offered load is met. */
function saturatedSection(rows: Row[], spec: PushSpec): string {
  const offered = Math.round((FANOUT_RATE * spec.subscribers) / spec.topics);
  return `
### At the fan-out bench's rate: ${FANOUT_RATE} publications/s

The same, at ${FANOUT_RATE} publications/s (${offered.toLocaleString('en')} deliveries/s offered, about ${Math.round((offered * 16) / 1000)} MB/s of payload before
compression). The fan-out bench's 128-byte payloads make that rate fit on these 2 cores; 16 KB webhook payloads do not:
these rows are what a saturated machine gives, measured from 30 s after the ramp whether or not everyone connected.

| setting | open / asked | deliveries/s (slowest–fastest second) | push p50 ms | push p99 ms | lost | failed connections | client µs | nginx µs | replicas µs | total µs |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows
  .map(
    (r) =>
      `| ${r.mode} | ${r.openAtStart.toLocaleString('en')} / ${spec.subscribers.toLocaleString('en')} | ${r.deliveredPerSecond.toLocaleString('en')} (${r.slowestSecond.toLocaleString('en')}–${r.fastestSecond.toLocaleString('en')}) | ` +
      `${ms(r.push.p50)} | ${ms(r.push.p99)} | ${r.report.delivery.lost} | ${r.report.connections.failed} | ` +
      `${partUs(r, 'load client')} | ${partUs(r, 'nginx')} | ${partUs(r, 'replicas')} | ${perDeliveryUs(r)} |`,
  )
  .join('\n')}
`;
}
