import type { FaultMark } from './faults';
import type { LoadReport, TimelinePoint } from './report-model';

/** A self-contained HTML report: inline SVG charts over time, no scripts, opens offline. */
export function renderHtml(r: LoadReport): string {
  const charts = [
    chart('Connections: asked by the ramp, and open', r.timeline, r.faults, [
      field('asked', '#9ca3af', 'asked'),
      field('open', '#2563eb', 'open'),
    ]),
    chart('Opening rate: asked by the ramp, and achieved (per second)', r.timeline, r.faults, [
      field('askedOpensPerSecond', '#9ca3af', 'asked'),
      field('opensPerSecond', '#16a34a', 'opened'),
    ]),
    chart(
      'Open connections per replica',
      r.timeline,
      r.faults,
      [...new Set(r.timeline.flatMap((p) => Object.keys(p.openPerReplica ?? {})))].sort().map((replica, i) => ({
        value: (p) => p.openPerReplica?.[replica] ?? 0,
        color: REPLICA_COLORS[i % REPLICA_COLORS.length],
        label: replica,
      })),
    ),
    chart('Messages per second', r.timeline, r.faults, [
      field('sentPerSecond', '#16a34a', 'sent'),
      field('receivedPerSecond', '#9333ea', 'received'),
    ]),
    chart('RTT percentiles (ms, per second)', r.timeline, r.faults, [field('rttP50', '#0891b2', 'p50'), field('rttP99', '#dc2626', 'p99')]),
    chart('Push latency percentiles (ms, publish → delivery, per second)', r.timeline, r.faults, [
      field('pushP50', '#0891b2', 'p50'),
      field('pushP99', '#dc2626', 'p99'),
    ]),
    chart('Errors and closes (per second)', r.timeline, r.faults, [
      field('errors', '#dc2626', 'errors'),
      field('closes', '#f59e0b', 'closes'),
    ]),
    // Shows the seconds where the generator, not the system, was the limit (what makes a run INCONCLUSIVE).
    chart('The load generator itself, busiest process: event-loop lag p99 (ms) and CPU (%)', r.timeline, r.faults, [
      field('generatorLagP99Ms', '#dc2626', 'lag p99'),
      field('generatorCpuPercent', '#64748b', 'cpu'),
    ]),
  ];
  const lat = (name: string, l: { p50: number; p90: number; p99: number; p999: number; max: number; count: number }) =>
    `<tr><th>${name}</th>${[l.p50, l.p90, l.p99, l.p999, l.max].map((v) => `<td>${v.toFixed(3)}</td>`).join('')}<td>${l.count}</td></tr>`;
  const kv = (o: Record<string, number>) =>
    Object.entries(o)
      .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${v}</td></tr>`)
      .join('') || '<tr><td>none</td></tr>';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Load report — ${esc(r.target)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#111;max-width:1100px}
h1{font-size:20px} h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0} th,td{border:1px solid #ddd;padding:4px 8px;text-align:right} th{background:#f5f5f5;text-align:left}
.verdict{font-weight:bold;padding:4px 10px;border-radius:4px;color:#fff}.pass{background:#16a34a}.fail{background:#dc2626}.inconclusive{background:#d97706}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:16px} figure{margin:0} figcaption{font-weight:600;margin-bottom:4px}
</style></head><body>
<h1>Load report <span class="verdict ${r.verdict.toLowerCase()}">${r.verdict}</span></h1>
<p>${esc(r.target)} · started ${esc(r.startedAt)} · ${r.durationSeconds.toFixed(1)} s${r.interrupted ? ' · interrupted' : ''} · generator: ${r.generator.trustworthy ? 'ok' : `<b>not trustworthy</b> — ${esc(r.generator.reasons.join('; '))}`}</p>
<h2>Over time</h2><div class="charts">${charts.join('\n')}</div>
<h2>Connections</h2><table>
<tr><th>opened</th><td>${r.connections.opened}</td></tr><tr><th>failed</th><td>${r.connections.failed}</td></tr><tr><th>unfinished</th><td>${r.connections.unfinished}</td></tr>
<tr><th>peak</th><td>${r.connections.peak}</td></tr><tr><th>reconnects</th><td>${r.connections.reconnects}</td></tr>
<tr><th>opening rate asked</th><td>${r.opening.askedPerSecond}/s</td></tr><tr><th>opening rate achieved</th><td>${r.opening.achievedPerSecond ?? '—'}/s ${r.opening.held ? '(held)' : `<b>not held</b>: ${esc(r.opening.bottleneck ?? '')}`}</td></tr>
<tr><th>handshakes in flight, at most</th><td>${r.opening.maxHandshakesInFlight}</td></tr></table>
<h2>Per replica</h2><table>${kv(r.connections.perReplica)}</table>
<h2>Latency percentile spectrum (ms)</h2><div class="charts">${(['connect', 'rtt', 'push'] as const)
    .filter((k) => r.spectrum[k].length)
    .map((k) =>
      spectrumChart({ connect: 'Connect (socket → open)', rtt: 'RTT (corrected)', push: 'Push (publish → delivery)' }[k], r.spectrum[k]),
    )
    .join('\n')}</div>
<h2>Latency (ms)</h2><table><tr><th></th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>count</th></tr>
${lat('connect', r.latency.connect)}${lat('· tcp', r.latency.connect.tcp)}${lat('· tls', r.latency.connect.tls)}${lat('· upgrade', r.latency.connect.upgrade)}
${lat('ready (hello)', r.latency.ready)}${lat('slot wait (client)', r.latency.handshakeQueue)}${lat('rtt (corrected)', r.latency.rtt)}${lat('rtt (as sent)', r.latency.rttUncorrected)}${lat('push', r.latency.push)}</table>
<h2>Messages</h2><table>${kv(r.messages as unknown as Record<string, number>)}</table>
<h2>Delivery (through a broker)</h2>${r.delivery.accounted ? '' : '<p>Not accounted: without a broker, notifications carry no offsets (per-replica fan-out).</p>'}<table>${kv(Object.fromEntries(Object.entries(r.delivery).filter(([, v]) => typeof v === 'number')) as Record<string, number>)}</table>
<h2>Closes by code</h2>${closesTable(r)}
${r.faults.length ? `<h2>Injected faults</h2><table><tr><th>fault</th><th>at (s)</th><th>replica</th><th>closes caused</th><th>errors caused</th></tr>${r.faults.map((f) => `<tr><th>${esc(f.id)}</th><td>${f.atSeconds.toFixed(1)}</td><td>${esc(f.replica ?? '')}</td><td>${f.closes}</td><td>${f.errors}</td></tr>`).join('')}</table>` : ''}
${r.failover ? failoverSection(r.failover, r) : ''}
<h2>Errors</h2><table>${kv(r.errors)}</table>
<h2>Thresholds</h2><table>${r.thresholds.map((t) => `<tr><th>${esc(t.expression)}</th><td>${t.value}</td><td>${t.pass ? 'pass' : '<b>FAIL</b>'}</td></tr>`).join('') || '<tr><td>none</td></tr>'}</table>
</body></html>
`;
}

/** A proxy fault's failover: the figures, and the reconnect storm (handshakes per second). */
function failoverSection(f: NonNullable<LoadReport['failover']>, r: LoadReport): string {
  const [first, last] = [f.storm[0]?.t ?? 0, f.storm[f.storm.length - 1]?.t ?? 0];
  const points = r.timeline.filter((p) => p.t >= first && p.t <= last);
  const marks = r.faults.filter((m) => m.id === f.fault);
  const rows: [string, string][] = [
    ['fault', f.fault],
    ['address moved', `${f.from} → ${f.to ?? 'nobody'}`],
    ['answering again after (s)', f.seconds === undefined ? 'never' : f.seconds.toFixed(2)],
    ['connections dropped', String(f.dropped)],
    ['handshakes refused meanwhile', String(f.refused)],
    ['reconnected', `${f.reconnected} of ${f.dropped}`],
    ['all back after (s)', f.allReconnectedSeconds === undefined ? '—' : f.allReconnectedSeconds.toFixed(1)],
  ];
  return `<h2>Failover</h2><table>${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>
${chart('Reconnect storm: handshakes per second (reconnects included)', points, marks, [field('opensPerSecond', '#dc2626', 'opened')])}
${chart('Connections open through the failover', points, marks, [field('open', '#2563eb', 'open')])}`;
}

/** Closes as a table: expected (ours, or the server asking to reconnect), unexpected (cut), caused by a fault. */
function closesTable(r: LoadReport): string {
  const codes = Object.keys(r.closes).sort((a, b) => Number(a) - Number(b));
  if (!codes.length) return '<table><tr><td>none</td></tr></table>';
  const cell = (o: Record<string, number>, code: string) => `<td>${o[code] ?? 0}</td>`;
  return `<table><tr><th>code</th><th>expected</th><th>unexpected</th><th>by faults</th><th>total</th></tr>${codes
    .map(
      (c) =>
        `<tr><th>${esc(c)}</th>${cell(r.closesExpected, c)}${cell(r.closesUnexpected, c)}${cell(r.closesFault, c)}${cell(r.closes, c)}</tr>`,
    )
    .join('')}</table>`;
}

type Series = { value: (p: TimelinePoint) => number; color: string; label: string };
const field = (key: keyof TimelinePoint, color: string, label: string): Series => ({ value: (p) => Number(p[key]), color, label });
const REPLICA_COLORS = ['#2563eb', '#16a34a', '#dc2626', '#9333ea', '#f59e0b', '#0891b2', '#db2777', '#65a30d'];

function chart(title: string, points: TimelinePoint[], faults: FaultMark[], series: Series[]): string {
  const W = 520;
  const H = 200;
  const pad = { l: 48, r: 8, t: 8, b: 24 };
  const tMax = Math.max(1, ...points.map((p) => p.t));
  const vTicks = ticks(Math.max(1, ...points.flatMap((p) => series.map((s) => s.value(p)))));
  const vMax = vTicks[vTicks.length - 1];
  const tTicks = ticks(tMax, 6).filter((t) => t <= tMax);
  const x = (t: number) => pad.l + (t / tMax) * (W - pad.l - pad.r);
  const y = (v: number) => H - pad.b - (v / vMax) * (H - pad.t - pad.b);
  const lines = series
    .map(
      (s) =>
        `<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${points.map((p) => `${x(p.t).toFixed(1)},${y(s.value(p)).toFixed(1)}`).join(' ')}"/>`,
    )
    .join('');
  // A dashed line where each injected fault ran, labelled with its id.
  const marks = faults
    .filter((f) => f.atSeconds <= tMax)
    .map(
      (f) =>
        `<line x1="${x(f.atSeconds).toFixed(1)}" y1="${pad.t}" x2="${x(f.atSeconds).toFixed(1)}" y2="${H - pad.b}" ` +
        `stroke="#7c3aed" stroke-dasharray="4 3"/><text x="${(x(f.atSeconds) + 3).toFixed(1)}" y="${H - pad.b - 4}" font-size="10" fill="#7c3aed">${esc(f.id)}</text>`,
    )
    .join('');
  const legend = series
    .map((s, i) => `<text x="${pad.l + 8 + i * 90}" y="${pad.t + 12}" fill="${s.color}" font-size="11">■ ${s.label}</text>`)
    .join('');
  // Axes with values: a grid line and a label at each tick, seconds along the bottom.
  const axes = [
    valueGrid(vTicks, y, pad, W),
    ...tTicks.map((t) => `<text x="${x(t).toFixed(1)}" y="${H - 10}" font-size="10" text-anchor="middle">${fmtValue(t)}</text>`),
    axisLines(pad, W, H),
    `<text x="${W - pad.r}" y="${H - 1}" font-size="10" text-anchor="end">s</text>`,
  ].join('');
  return (
    `<figure><figcaption>${esc(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" ` +
    `width="100%" role="img" aria-label="${esc(title)}">${axes}${lines}${marks}${legend}</svg></figure>`
  );
}

/** Nice round tick values from 0 to at least max. */
function ticks(max: number, count = 4): number[] {
  const raw = max / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw || 1));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  return Array.from({ length: Math.ceil(max / step) + 1 }, (_, i) => i * step);
}

type Padding = { l: number; r: number; t: number; b: number };

/** A light grid line and a value label at each tick of the value (y) axis. */
function valueGrid(values: number[], y: (v: number) => number, pad: Padding, W: number): string {
  return values
    .map(
      (v) =>
        `<line x1="${pad.l}" y1="${y(v).toFixed(1)}" x2="${W - pad.r}" y2="${y(v).toFixed(1)}" stroke="#eee"/><text ` +
        `x="${pad.l - 4}" y="${(y(v) + 3).toFixed(1)}" font-size="10" text-anchor="end">${fmtValue(v)}</text>`,
    )
    .join('');
}

/** The x and y axis lines of a chart's plot area. */
function axisLines(pad: Padding, W: number, H: number): string {
  return `<line x1="${pad.l}" y1="${H - pad.b}" x2="${W - pad.r}" y2="${H - pad.b}" stroke="#999"/><line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${H - pad.b}" stroke="#999"/>`;
}

const fmtValue = (v: number) =>
  v >= 1000 ? `${(v / 1000).toFixed(v % 1000 ? 1 : 0)}k` : v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(v >= 1 ? 1 : 2);

/**
 * A latency percentile spectrum, as HdrHistogram's plotter draws it: the x axis is log(1/(1 − p)),
 * so 90%, 99%, 99.9%, … are evenly spaced and the tail gets the room; the max sits at the right edge.
 */
function spectrumChart(title: string, points: [number, number][]): string {
  const W = 520;
  const H = 220;
  const pad = { l: 52, r: 12, t: 10, b: 30 };
  const decades = 5;
  const xOf = (p: number) => (p >= 100 ? decades : Math.min(decades, Math.log10(1 / (1 - p / 100))));
  const yTicks = ticks(Math.max(...points.map(([, v]) => v), 0.001));
  const yMax = yTicks[yTicks.length - 1];
  const x = (p: number) => pad.l + (xOf(p) / decades) * (W - pad.l - pad.r);
  const y = (v: number) => H - pad.b - (v / yMax) * (H - pad.t - pad.b);
  const grid = [
    valueGrid(yTicks, y, pad, W),
    ...['0%', '90%', '99%', '99.9%', '99.99%', '99.999%'].map((label, d) => {
      const px = pad.l + (d / decades) * (W - pad.l - pad.r);
      return (
        `<line x1="${px.toFixed(1)}" y1="${pad.t}" x2="${px.toFixed(1)}" y2="${H - pad.b}" stroke="#eee"/><text ` +
        `x="${px.toFixed(1)}" y="${H - pad.b + 14}" font-size="10" text-anchor="${d === decades ? 'end' : d === 0 ? 'start' : 'middle'}">${label}</text>`
      );
    }),
  ].join('');
  const line = `<polyline fill="none" stroke="#2563eb" stroke-width="1.8" points="${points.map(([p, v]) => `${x(p).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>`;
  const axes = `${axisLines(pad, W, H)}<text x="${(pad.l + W - pad.r) / 2}" y="${H - 2}" font-size="10" text-anchor="middle">percentile</text><text x="4" y="${pad.t + 8}" font-size="10">ms</text>`;
  return (
    `<figure><figcaption>${esc(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" ` +
    `width="100%" role="img" aria-label="${esc(title)}">${grid}${axes}${line}</svg></figure>`
  );
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
