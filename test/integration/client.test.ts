import assert from 'node:assert/strict';
import { fork, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runLoad } from '../../app/src/client/coordinator';
import { Stats, type SerializedStats } from '../../app/src/client/stats';
import { loadProfileSchema, type LoadProfileInput } from '../../app/src/shared/profile';
import { makeTestCerts } from '../helpers/certs';
import { eventually, metricValue, sleep, startServer } from '../helpers/server';
import { ROOT } from '../helpers/synth';
import { freePort } from '../../local/processes';
import { scratchDir } from '../helpers/scratch';

const profile = (p: LoadProfileInput) => loadProfileSchema.parse(p);

/** The CLI as a user runs it, as a real process (async: the servers run in this process). */
function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'app/src/client/main.ts', '--quiet', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    }),
  );
}

describe('load client against the real server', () => {
  it('counts match what the server saw', async (t) => {
    const s = await startServer({}, 'count-0');
    t.after(() => s.stop());
    const result = await runLoad({
      url: s.url,
      insecure: false,
      workers: 1,
      profile: profile({
        stages: [{ connections: 200, rampRate: 400, holdMs: 1500 }],
        senderFraction: 0.5,
        messageRate: 10,
        arrival: 'fixed',
        topics: 4,
        publishRate: 20,
      }),
    });
    const { stats } = result;
    await sleep(100);
    assert.equal(stats.counters.opened, 200);
    assert.equal(await metricValue(s.metrics.connectionsOpened), 200);
    assert.equal(stats.perReplica.get('count-0'), 200);
    assert.equal(result.peak, 200);
    const serverReceived = await metricValue(s.metrics.messagesReceived);
    assert.equal(stats.counters.sent, serverReceived, 'every message sent was received by the server');
    assert.equal(stats.counters.received, await metricValue(s.metrics.messagesSent), 'every message the server sent arrived');
    assert.ok(stats.histograms.rtt.totalCount > 500, `${stats.histograms.rtt.totalCount} round trips measured`);
    assert.equal(stats.counters.notifications, await metricValue(s.metrics.notificationsDelivered));
    assert.ok(stats.histograms.push.totalCount > 0);
    assert.deepEqual([...stats.closes], [[1000, [200, 0, 0]]], 'all closes were ours (expected), none unexpected, none caused by a fault');
    assert.equal(await metricValue(s.metrics.connectionsClosed, { code: '1000' }), 200);
    // Corrected RTT (from when a message was due) is never below the RTT as sent.
    assert.ok(stats.histograms.rtt.getValueAtPercentile(50) >= stats.histograms.rttUncorrected.getValueAtPercentile(50));
  });

  it('a stopped server gives 1006 and refused, and users reconnect with backoff once it is back', async () => {
    const s = await startServer({}, 'flaky-0');
    const port = Number(new URL(s.httpUrl).port);
    const load = runLoad({
      url: s.url,
      insecure: false,
      workers: 1,
      profile: profile({
        stages: [{ connections: 20, rampRate: 200, holdMs: 4000 }],
        senderFraction: 0,
        topics: 0,
        publishRate: 0,
        reconnect: { enabled: true, initialDelayMs: 100, maxDelayMs: 800 },
      }),
    });
    await sleep(600);
    await s.stop(); // every socket is cut: the clients see 1006
    await sleep(2000); // the port refuses connections meanwhile
    const restarted = await startServerOn(port);
    const { stats } = await load;
    await restarted.stop();
    assert.equal(stats.closes.get(1006)?.[1], 20, 'twenty unexpected 1006 closes');
    assert.ok((stats.errors.get('refused') ?? 0) > 0, 'refused while down');
    assert.ok(stats.counters.reconnects >= 20, `${stats.counters.reconnects} reconnects`);
    // Without backoff 20 users would retry every few ms for 2 s; with it, a handful each.
    assert.ok(stats.counters.reconnects / 20 < 15, `${stats.counters.reconnects / 20} attempts per user`);
    assert.ok(stats.counters.opened >= 40, 'everyone came back');
  });

  it('handshakes still in flight when the run ends are unfinished, not errors', async (t) => {
    // A target that accepts TCP and never answers the upgrade: every handshake is in flight at the end.
    const sockets = new Set<Socket>();
    const silent = createTcpServer((socket) => sockets.add(socket.on('error', () => {})));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    t.after(() => {
      silent.close();
      for (const socket of sockets) socket.destroy();
    });
    const { stats } = await runLoad({
      url: `ws://127.0.0.1:${(silent.address() as AddressInfo).port}/ws`,
      insecure: false,
      workers: 1,
      profile: profile({
        stages: [{ connections: 5, rampRate: 100, holdMs: 500 }],
        connectTimeoutMs: 30_000,
        senderFraction: 0,
        topics: 0,
        publishRate: 0,
      }),
    });
    assert.equal(stats.counters.unfinished, 5);
    assert.equal(stats.counters.failed, 0);
    assert.deepEqual([...stats.errors], []);
  });
});

async function startServerOn(port: number) {
  // Same settings, fixed port: the "restarted" replica.
  const { createReplica } = await import('../../app/src/server/replica');
  const { serverSchema } = await import('../../app/src/topology');
  const { server } = createReplica({ ...serverSchema.parse({ clientPublish: true }), replicaId: 'flaky-1' }, { logLevel: 'silent' });
  await server.listen(port, '127.0.0.1');
  return { stop: () => server.stop() };
}

describe('thresholds decide the exit code', () => {
  it('passes, fails, and refuses an unknown metric', async (t) => {
    const s = await startServer();
    t.after(() => s.stop());
    const base = [s.url, '-c', '20', '--ramp-rate', '200', '-d', '1s', '--rate', '20'];
    const pass = await cli([...base, '-t', 'rtt.p99<60000', '-t', 'errors==0']);
    assert.equal(pass.code, 0, pass.out + pass.err);
    assert.match(pass.out, /threshold {4}pass {2}rtt\.p99<60000/);
    const fail = await cli([...base, '-t', 'messages.sent<1']);
    assert.equal(fail.code, 1, fail.out + fail.err);
    assert.match(fail.out, /threshold {4}FAIL {2}messages\.sent<1/);
    assert.match(fail.out, /verdict {6}FAIL/);
    const bad = await cli([...base, '-t', 'latency<5']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /thresholds\.0: "latency" is not a metric/);
  });

  it('writes the JSON report with the documented fields and a self-contained HTML report', async (t) => {
    const s = await startServer({}, 'rep-0');
    t.after(() => s.stop());
    const dir = scratchDir('ws-report-');
    const r = await cli([
      s.url,
      '-c',
      '30',
      '--ramp-rate',
      '300',
      '-d',
      '2s',
      '--rate',
      '10',
      '--report',
      join(dir, 'r.json'),
      '--html',
      join(dir, 'r.html'),
    ]);
    assert.equal(r.code, 0, r.out + r.err);
    const report = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
    for (const path of [
      'connections.opened',
      'connections.failed',
      'connections.unfinished',
      'connections.peak',
      'connections.perReplica',
      'messages.sent',
      'messages.received',
      'latency.connect.p50',
      'latency.connect.p99',
      'latency.connect.max',
      'latency.rtt.p50',
      'latency.rtt.p90',
      'latency.rtt.p99',
      'latency.rtt.p999',
      'latency.rtt.max',
      'latency.push.p50',
      'latency.push.p99',
      'latency.push.max',
      'latency.handshakeQueue.p99',
      'opening.askedPerSecond',
      'opening.achievedPerSecond',
      'verdict',
      'closes',
      'errors',
      'thresholds',
      'durationSeconds',
    ]) {
      assert.notEqual(
        path.split('.').reduce((o: any, k) => o?.[k], report),
        undefined,
        `${path} in the report`,
      );
    }
    assert.equal(report.connections.opened, 30);
    assert.deepEqual(report.connections.perReplica, { 'rep-0': 30 });
    assert.ok(report.timeline.length >= 2);
    const html = readFileSync(join(dir, 'r.html'), 'utf8');
    assert.match(html, /<svg[^>]*>.*<polyline/s);
    assert.doesNotMatch(html, /<script|src="http|href="http/, 'nothing loaded from outside');
    // A percentile spectrum per measured latency, from 0% to the max, on a log(1/(1 - p)) axis.
    const spectrum = report.spectrum.rtt as [number, number][];
    assert.deepEqual([spectrum[0][0], spectrum.at(-2)![0], spectrum.at(-1)![0]], [0, 99.999, 100]);
    assert.ok(
      spectrum.every(([, v], i) => i === 0 || v >= spectrum[i - 1][1]),
      'latency never falls as the percentile rises',
    );
    assert.equal(spectrum.at(-1)![1], report.latency.rtt.max);
    assert.match(html, /Latency percentile spectrum/);
    for (const label of ['90%', '99.9%', '99.999%'])
      assert.match(html, new RegExp(`>${label.replace('.', '\\.')}</text>`), `the ${label} tick`);
    assert.match(html, /RTT \(corrected\)<\/figcaption>/);
    assert.match(html, /class="verdict pass">PASS/);
  });

  it('serves Prometheus /metrics while running (--metrics-port)', async (t) => {
    const s = await startServer({}, 'mp-0');
    t.after(() => s.stop());
    const port = await freePort();
    const run = cli([s.url, '-c', '40', '--ramp-rate', '200', '-d', '4s', '--rate', '10', '--metrics-port', String(port)]);
    let text = '';
    await eventually(
      async () => {
        text = await fetch(`http://127.0.0.1:${port}/metrics`).then(
          (r) => r.text(),
          () => '',
        );
        return /^load_connections_open 40$/m.test(text) && /^load_messages_sent_total [1-9]/m.test(text);
      },
      8000,
      'metrics showing 40 open connections',
    );
    for (const name of [
      'load_users',
      'load_messages_received_total',
      'load_errors_total',
      'load_unexpected_closes_total',
      'load_reconnects_total',
      'load_rtt_seconds{quantile="0.99"}',
    ]) {
      assert.ok(text.includes(name), `${name} exposed`);
    }
    assert.equal((await run).code, 0);
  });

  it('refuses a profile with an error, naming the field', async () => {
    const dir = scratchDir('ws-profile-');
    writeFileSync(join(dir, 'p.json'), JSON.stringify({ stages: [{ connections: 10, rampRate: -5, holdMs: 0 }], senderFraction: 2 }));
    const r = await cli(['ws://127.0.0.1:1/x', '--profile', join(dir, 'p.json')]);
    assert.equal(r.code, 2);
    assert.match(r.err, /stages\.0\.rampRate/);
    assert.match(r.err, /senderFraction/);
    const env = await cli(['ws://127.0.0.1:1/x'], { LOAD_PROFILE: '{"topics": "many"}' });
    assert.equal(env.code, 2);
    assert.match(env.err, /LOAD_PROFILE[\s\S]*topics/);
  });
});

describe('several worker processes', () => {
  it('merging histograms across processes equals recording every sample in one', async () => {
    const samples = Array.from({ length: 30_000 }, (_, i) => 0.05 + ((i * 7919) % 10_007) / 37 + (i % 97 === 0 ? 900 : 0));
    const parts: SerializedStats[] = await Promise.all(
      [0, 1, 2].map(
        (w) =>
          new Promise<SerializedStats>((resolve, reject) => {
            const child = fork(join(ROOT, 'test/helpers/stats-worker.ts'), [], { execArgv: ['--import', 'tsx'] });
            child.once('message', (m) => resolve(m as SerializedStats));
            child.once('error', reject);
            child.send(samples.filter((_, i) => i % 3 === w));
          }),
      ),
    );
    const merged = Stats.merge(parts);
    const single = new Stats();
    for (const ms of samples) single.rtt(ms, ms / 2);
    for (const name of ['rtt', 'rttUncorrected'] as const) {
      assert.equal(merged.histograms[name].totalCount, single.histograms[name].totalCount);
      // Encoding keeps buckets (3 significant digits), so extremes come back as their bucket's bounds.
      const one = single.histograms[name] as typeof single.histograms.rtt & {
        highestEquivalentValue(v: number): number;
        lowestEquivalentValue(v: number): number;
      };
      assert.equal(merged.histograms[name].maxValue, one.highestEquivalentValue(one.maxValue));
      assert.equal(merged.histograms[name].minNonZeroValue, one.lowestEquivalentValue(one.minNonZeroValue));
      for (const p of [1, 10, 50, 75, 90, 99, 99.9, 99.99]) {
        assert.equal(merged.histograms[name].getValueAtPercentile(p), single.histograms[name].getValueAtPercentile(p), `${name} p${p}`);
      }
    }
    assert.equal(merged.counters.sent, samples.length);
  });

  it('spreads connections over worker processes and merges their counts', async (t) => {
    const s = await startServer({}, 'multi-0');
    t.after(() => s.stop());
    const result = await runLoad({
      url: s.url,
      insecure: false,
      workers: 3,
      profile: profile({
        stages: [{ connections: 90, rampRate: 300, holdMs: 1000 }],
        senderFraction: 1,
        messageRate: 5,
        topics: 0,
        publishRate: 0,
      }),
    });
    assert.equal(result.generator.workers, 3);
    assert.equal(result.stats.counters.opened, 90);
    assert.equal(await metricValue(s.metrics.connectionsOpened), 90);
    assert.equal(result.stats.perReplica.get('multi-0'), 90);
    assert.equal(result.stats.counters.sent, await metricValue(s.metrics.messagesReceived));
    assert.equal(
      result.stats.histograms.rtt.totalCount,
      result.stats.counters.received - 90,
      'every echo measured (received = hellos + echoes)',
    );
  });
});

describe('WSS', () => {
  it('verifies the server against --ca, fails without it, and skips verification only with --insecure', async (t) => {
    const certs = makeTestCerts();
    const s = await startServer({}, 'tls-0');
    // TLS in front of the real server: the HTTPS listener hands upgrades to it.
    const https = createHttpsServer({ cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey) });
    https.on('upgrade', (req, socket, head) => s.server.http.emit('upgrade', req, socket, head));
    await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
    t.after(async () => {
      https.close();
      await s.stop();
    });
    const url = `wss://localhost:${(https.address() as AddressInfo).port}/ws-notifications`;
    const args = [url, '-c', '5', '--ramp-rate', '50', '-d', '1s', '--rate', '5', '--no-reconnect'];

    const verified = await cli([...args, '--ca', certs.caCert]);
    assert.equal(verified.code, 0, verified.out + verified.err);
    assert.match(verified.out, /opened 5 {2}failed 0/);
    assert.match(verified.out, /\n {4}tls +\d+\.\d+/);

    const unverified = await cli(args);
    assert.equal(unverified.code, 1);
    assert.match(unverified.out, /opened 0 {2}failed 5/);
    assert.match(unverified.out, /errors {7}tls=5/);

    const insecure = await cli([...args, '--insecure']);
    assert.equal(insecure.code, 0, insecure.out + insecure.err);
  });
});
