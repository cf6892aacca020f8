import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect as tcpConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { eventually, metricValue, sleep, startServer, TestClient, type RunningServer } from '../helpers/server';
import { ROOT } from '../helpers/synth';
import { serverSchema, toServerEnv } from '../../app/src/topology';

describe('messages', () => {
  let s: RunningServer;
  before(async () => (s = await startServer({}, 'replica-a')));
  after(() => s.stop());

  it('says hello naming the replica', async () => {
    const c = await TestClient.open(s.url);
    const hello = await c.next('hello');
    assert.equal(hello.replica, 'replica-a');
    assert.match(hello.connection, /^replica-a-\d+$/);
    assert.equal(hello.pingIntervalMs, s.settings.pingIntervalMs);
    c.close();
  });

  it('echoes id, timestamp and payload back', async () => {
    const c = await TestClient.open(s.url);
    c.send({ type: 'echo', id: 7, ts: 1234.5, payload: 'héllo' });
    assert.deepEqual(await c.next('echo'), { type: 'echo', id: 7, ts: 1234.5, payload: 'héllo' });
    c.close();
  });

  it('fans a publish out to the subscribers of the topic on this replica', async () => {
    const [a, b, pub] = await Promise.all([TestClient.open(s.url), TestClient.open(s.url), TestClient.open(s.url)]);
    a.send({ type: 'subscribe', topic: 'news' });
    b.send({ type: 'subscribe', topic: 'news' });
    await Promise.all([a.next('subscribed'), b.next('subscribed')]);
    pub.send({ type: 'publish', topic: 'news', data: { n: 1 }, id: 'p1', ts: 99 });
    const [na, nb, ack] = await Promise.all([a.next('notification'), b.next('notification'), pub.next('published')]);
    assert.deepEqual(na, { type: 'notification', topic: 'news', data: { n: 1 }, id: 'p1', ts: 99, replica: 'replica-a' });
    assert.deepEqual(nb, na);
    assert.equal(ack.delivered, 2);

    b.send({ type: 'unsubscribe', topic: 'news' });
    await b.next('unsubscribed');
    pub.send({ type: 'publish', topic: 'news', data: { n: 2 } });
    assert.equal((await pub.next('published')).delivered, 1);
    assert.deepEqual((await a.next('notification')).data, { n: 2 });
    await sleep(50);
    assert.equal(b.messages.filter((m) => m.type === 'notification').length, 1, 'no delivery after unsubscribe');
    for (const c of [a, b, pub]) c.close();
  });

  it('answers malformed messages with an error and counts them, without closing', async () => {
    const c = await TestClient.open(s.url);
    const before = await metricValue(s.metrics.malformedMessages, { code: 'malformed' });
    c.ws.send('{not json');
    assert.equal((await c.next('error')).code, 'malformed');
    c.send({ type: 'teleport' });
    assert.equal((await c.next('error')).code, 'unknown_type');
    c.send({ type: 'subscribe', topic: 'bad topic with spaces' });
    assert.equal((await c.next('error')).code, 'invalid_field');
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    assert.equal((await c.next('error')).code, 'binary_unsupported');
    assert.equal(await metricValue(s.metrics.malformedMessages, { code: 'malformed' }), before + 1);
    c.send({ type: 'echo', id: 1, ts: 1 });
    await c.next('echo');
    assert.equal(c.ws.readyState, WebSocket.OPEN);
    c.close();
  });
});

describe('HTTP on the same port', () => {
  let s: RunningServer;
  before(async () => (s = await startServer()));
  after(() => s.stop());

  it('answers a plain GET on the WebSocket path with 426, and other paths with 404', async () => {
    const plain = await fetch(`${s.httpUrl}/ws-notifications`);
    assert.equal(plain.status, 426);
    assert.equal(plain.headers.get('upgrade'), 'websocket');
    assert.equal((await fetch(`${s.httpUrl}/elsewhere`)).status, 404);
    assert.equal((await fetch(`${s.httpUrl}/healthz`)).status, 200);
    assert.equal((await fetch(`${s.httpUrl}/readyz`)).status, 200);
  });

  it('refuses an upgrade on another path with 404', async () => {
    await assert.rejects(TestClient.open(s.url.replace('/ws-notifications', '/other')), /Unexpected server response: 404/);
    assert.equal(await metricValue(s.metrics.handshakeRejections, { reason: 'path' }), 1);
  });

  it('answers a malformed upgrade with 400 instead of hanging', async () => {
    const port = new URL(s.httpUrl).port;
    const response = await new Promise<string>((resolve, reject) => {
      const sock = tcpConnect(Number(port), '127.0.0.1', () =>
        sock.write(
          'GET /ws-notifications HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n',
        ),
      );
      let data = '';
      sock.on('data', (d) => (data += d));
      sock.on('close', () => resolve(data));
      sock.on('error', reject);
      setTimeout(() => reject(new Error('hung')), 3000).unref();
    });
    assert.match(response, /^HTTP\/1\.1 400/);
  });
});

describe('heartbeat', () => {
  let s: RunningServer;
  before(async () => (s = await startServer({ pingIntervalMs: 100, pongTimeoutMs: 300, writeTimeoutMs: 200 })));
  after(() => s.stop());

  it('terminates a peer that stops answering pings', async () => {
    const silent = await TestClient.open(s.url, { autoPong: false });
    const started = Date.now();
    const { code } = await silent.closed;
    const elapsed = Date.now() - started;
    assert.equal(code, 1006, 'terminated, no close handshake');
    assert.ok(elapsed >= 300 && elapsed < 1500, `terminated after ${elapsed} ms`);
    assert.equal(await metricValue(s.metrics.heartbeatTimeouts), 1);
  });

  it('keeps a peer that answers alive well past the pong timeout, and measures the RTT', async () => {
    const alive = await TestClient.open(s.url);
    await sleep(1500); // five pong timeouts
    assert.equal(alive.ws.readyState, WebSocket.OPEN);
    const { values } = await s.metrics.heartbeatRtt.get();
    const count = values.find((v) => v.metricName === 'ws_heartbeat_rtt_seconds_count')!.value;
    assert.ok(count >= 5, `${count} pongs measured`);
    alive.close();
  });
});

/**
 * A subscriber that stops reading, and a publisher that floods its topic with 32 KiB
 * notifications until `reacted()` turns non-zero (at most 2,000, ~64 MB). The kernel's socket
 * buffers fill first, then the server's send buffer grows. Returns the publisher.
 */
async function floodStalledReader(s: RunningServer, reacted: () => Promise<number>): Promise<TestClient> {
  const stalled = await TestClient.open(s.url);
  stalled.send({ type: 'subscribe', topic: 'firehose' });
  await stalled.next('subscribed');
  (stalled.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  const pub = await TestClient.open(s.url);
  const data = 'y'.repeat(32 * 1024);
  for (let i = 0; i < 2000 && (await reacted()) === 0; i++) {
    pub.send({ type: 'publish', topic: 'firehose', data });
    await pub.next('published');
  }
  return pub;
}

describe('limits', () => {
  it('closes an oversize message with 1009 and counts it', async (t) => {
    const s = await startServer({ maxMessageBytes: 1024 });
    t.after(() => s.stop());
    const c = await TestClient.open(s.url);
    c.send({ type: 'echo', id: 1, ts: 1, payload: 'x'.repeat(900) });
    await c.next('echo');
    c.send({ type: 'echo', id: 2, ts: 1, payload: 'x'.repeat(2000) });
    assert.equal((await c.closed).code, 1009);
    assert.equal(await metricValue(s.metrics.oversizeMessages), 1);
  });

  it('closes invalid UTF-8 text with 1007 and counts it', async (t) => {
    const s = await startServer();
    t.after(() => s.stop());
    const c = await TestClient.open(s.url);
    c.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
    assert.equal((await c.closed).code, 1007);
    assert.equal(await metricValue(s.metrics.invalidUtf8), 1);
  });

  it('answers 503 past the per-replica connection cap', async (t) => {
    const s = await startServer({ maxConnections: 2 });
    t.after(() => s.stop());
    const a = await TestClient.open(s.url);
    const b = await TestClient.open(s.url);
    await assert.rejects(TestClient.open(s.url), /Unexpected server response: 503/);
    assert.equal(await metricValue(s.metrics.handshakeRejections, { reason: 'capacity' }), 1);
    a.close();
    await a.closed;
    await eventually(() => s.server.connectionCount === 1);
    const c = await TestClient.open(s.url);
    b.close();
    c.close();
  });

  it('enforces the origin allow-list at the handshake', async (t) => {
    const s = await startServer({ allowedOrigins: ['https://app.example'] });
    t.after(() => s.stop());
    await assert.rejects(TestClient.open(s.url, { origin: 'https://evil.example' }), /403/);
    (await TestClient.open(s.url, { origin: 'https://app.example' })).close();
    (await TestClient.open(s.url)).close(); // non-browser clients send no Origin
  });

  it('closes a slow consumer instead of buffering without bound, and lets a stalled one go after the write timeout', async (t) => {
    const s = await startServer({ sendBufferLimitBytes: 64 * 1024, writeTimeoutMs: 1_000 });
    t.after(() => s.stop());
    const pub = await floodStalledReader(s, () => metricValue(s.metrics.slowConsumerCloses));
    assert.ok((await metricValue(s.metrics.slowConsumerCloses)) >= 1, 'slow consumer closed');
    await eventually(() => s.server.connectionCount === 1, 3000, 'slow consumer gone');
    pub.close();
  });

  it('a slow consumer that still reads gets the 1008 close frame, not a cut (1006)', async (t) => {
    const s = await startServer({ sendBufferLimitBytes: 256 * 1024, writeTimeoutMs: 5_000, pingIntervalMs: 20_000, pongTimeoutMs: 40_000 });
    t.after(() => s.stop());
    const slow = await TestClient.open(s.url);
    slow.send({ type: 'subscribe', topic: 'firehose' });
    await slow.next('subscribed');
    const socket = (slow.ws as unknown as { _socket: import('node:net').Socket })._socket;
    socket.pause();
    const pub = await TestClient.open(s.url);
    t.after(() => pub.close());
    const data = 'y'.repeat(32 * 1024);
    for (let i = 0; i < 2000 && (await metricValue(s.metrics.slowConsumerCloses)) === 0; i++) {
      pub.send({ type: 'publish', topic: 'firehose', data });
      await pub.next('published');
    }
    assert.equal(await metricValue(s.metrics.slowConsumerCloses), 1, 'cut at the limit');
    // It reads again, slowly: one chunk every 100 ms. What the kernel holds takes seconds to
    // drain, longer than the one second a stalled consumer is given, but it keeps moving.
    const reader = setInterval(() => {
      socket.once('data', () => socket.pause());
      socket.resume();
    }, 100);
    t.after(() => clearInterval(reader));
    const { code } = await slow.closed;
    assert.equal(code, 1008, 'the close frame got through');
  });
});

describe('write timeout', () => {
  it('terminates a peer whose writes make no progress within the write timeout', async (t) => {
    // The send buffer limit is out of reach, so only the write timeout can act.
    const s = await startServer({
      writeTimeoutMs: 300,
      pingIntervalMs: 5000,
      pongTimeoutMs: 10_000,
      sendBufferLimitBytes: 256 * 1024 * 1024,
    });
    t.after(() => s.stop());
    const pub = await floodStalledReader(s, () => metricValue(s.metrics.writeTimeouts));
    await eventually(async () => (await metricValue(s.metrics.writeTimeouts)) === 1, 3000, 'write timeout');
    assert.equal(await metricValue(s.metrics.slowConsumerCloses), 0);
    await eventually(() => s.server.connectionCount === 1, 3000, 'stalled peer gone');
    pub.close();
  });
});

describe('compression', () => {
  it('required: refuses a client without permessage-deflate (400) and accepts one with it', async (t) => {
    const s = await startServer({ compression: 'required' });
    t.after(() => s.stop());
    await assert.rejects(TestClient.open(s.url, { perMessageDeflate: false }), /Unexpected server response: 400/);
    assert.equal(await metricValue(s.metrics.handshakeRejections, { reason: 'compression_required' }), 1);
    const c = await TestClient.open(s.url, { perMessageDeflate: true });
    assert.match(c.ws.extensions, /permessage-deflate/);
    c.send({ type: 'echo', id: 1, ts: 1, payload: 'z'.repeat(5000) });
    assert.equal((await c.next('echo')).payload?.length, 5000);
    c.close();
  });

  it('offered: negotiated when the client asks, absent when it does not', async (t) => {
    const s = await startServer({ compression: 'offered' });
    t.after(() => s.stop());
    const withDeflate = await TestClient.open(s.url, { perMessageDeflate: true });
    assert.match(withDeflate.ws.extensions, /permessage-deflate/);
    // The memory-saving parameters were negotiated (see docs/compression.md).
    assert.match(withDeflate.extensionsHeader, /server_no_context_takeover/);
    assert.match(withDeflate.extensionsHeader, /client_no_context_takeover/);
    assert.match(withDeflate.extensionsHeader, /server_max_window_bits=10/);
    const without = await TestClient.open(s.url, { perMessageDeflate: false });
    assert.equal(without.ws.extensions, '');
    withDeflate.close();
    without.close();
  });

  it('off: never negotiated', async (t) => {
    const s = await startServer({ compression: 'off' });
    t.after(() => s.stop());
    const c = await TestClient.open(s.url, { perMessageDeflate: true });
    assert.equal(c.ws.extensions, '');
    c.close();
  });
});

describe('metrics', () => {
  it('exposes the documented names with values that match what happened', async (t) => {
    const s = await startServer({}, 'm-0');
    t.after(() => s.stop());
    const a = await TestClient.open(s.url);
    const b = await TestClient.open(s.url);
    a.send({ type: 'echo', id: 1, ts: 1 });
    a.send({ type: 'echo', id: 2, ts: 1 });
    await a.next('echo');
    await a.next('echo');
    a.ws.send('garbage');
    await a.next('error');
    b.ws.close(1000);
    await b.closed;
    await eventually(() => s.server.connectionCount === 1);
    const text = await (await fetch(`${s.httpUrl}/metrics`)).text();
    const line = (name: string) => text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`)) ?? '';
    const value = (pattern: RegExp) =>
      Number(
        text
          .split('\n')
          .find((l) => pattern.test(l))
          ?.split(' ')
          .pop(),
      );
    assert.equal(value(/^ws_connections_active\{replica="m-0"\}/), 1);
    assert.equal(value(/^ws_connections_opened_total\{replica="m-0"\}/), 2);
    assert.equal(value(/^ws_connections_closed_total\{code="1000",replica="m-0"\}/), 1);
    assert.equal(value(/^ws_messages_received_total\{type="echo",replica="m-0"\}/), 2);
    assert.equal(value(/^ws_messages_sent_total\{type="echo",replica="m-0"\}/), 2);
    assert.equal(value(/^ws_messages_sent_total\{type="hello",replica="m-0"\}/), 2);
    assert.equal(value(/^ws_malformed_messages_total\{code="malformed",replica="m-0"\}/), 1);
    assert.equal(value(/^ws_ready\{replica="m-0"\}/), 1);
    for (const name of [
      'ws_received_bytes_total',
      'ws_sent_bytes_total',
      'ws_message_size_bytes_bucket',
      'ws_heartbeat_rtt_seconds_bucket',
      'ws_heartbeat_timeouts_total',
      'ws_write_timeouts_total',
      'ws_oversize_messages_total',
      'ws_invalid_utf8_total',
      'ws_slow_consumer_closes_total',
      'ws_topic_subscriptions',
      'ws_notifications_delivered_total',
      'process_cpu_seconds_total',
      'nodejs_heap_size_used_bytes',
    ]) {
      assert.ok(line(name), `${name} exposed`);
    }
    assert.ok(!/connection="/.test(text), 'no per-connection labels');
    a.close();
  });
});

describe('graceful drain', () => {
  it('in process: readiness goes false, new upgrades get 503, everyone gets 1001 spread over the window', async (t) => {
    const s = await startServer({ drainWindowMs: 600, drainDeadlineMs: 3000 });
    t.after(() => s.stop());
    const clients = await Promise.all(Array.from({ length: 6 }, () => TestClient.open(s.url)));
    const started = Date.now();
    const drained = s.server.drain();
    assert.equal((await fetch(`${s.httpUrl}/readyz`)).status, 503);
    await assert.rejects(TestClient.open(s.url), /503/);
    const closes = await Promise.all(clients.map(async (c) => ({ ...(await c.closed), at: Date.now() - started })));
    await drained;
    assert.deepEqual(
      closes.map((c) => c.code),
      Array(6).fill(1001),
    );
    const spread = Math.max(...closes.map((c) => c.at)) - Math.min(...closes.map((c) => c.at));
    assert.ok(spread >= 300, `closes spread over ${spread} ms, not all at once`);
  });

  it('as a process: SIGTERM drains every client with 1001 and the process exits 0 before the deadline', async () => {
    const port = 19000 + Math.floor(Math.random() * 500);
    const child = spawn(process.execPath, ['--import', 'tsx', 'app/src/server/main.ts'], {
      cwd: ROOT,
      env: {
        ...process.env,
        ...toServerEnv(serverSchema.parse({ port, drainWindowMs: 500, drainDeadlineMs: 4000 }), 'drain-0', { host: '127.0.0.1' }),
        // Unset is jwt, which needs a provider: this replica is open.
        WS_AUTH_MODE: 'none',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let logs = '';
    child.stdout.on('data', (d) => (logs += d));
    child.stderr.on('data', (d) => (logs += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await eventually(() => logs.includes('"listening"'), 15_000, 'server listening');
    const url = `ws://127.0.0.1:${port}/ws-notifications`;
    const clients = await Promise.all(Array.from({ length: 5 }, () => TestClient.open(url)));
    const started = Date.now();
    child.kill('SIGTERM');
    const codes = await Promise.all(clients.map(async (c) => (await c.closed).code));
    const exitCode = await exited;
    assert.deepEqual(codes, Array(5).fill(1001));
    assert.equal(exitCode, 0, logs);
    assert.ok(Date.now() - started < 4000, 'exited before the deadline');
    assert.match(logs, /"msg":"drained"/);
  });
});
