import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { holdsInflate } from '../../app/src/server/compression';
import type { ServerConfig } from '../../app/src/topology';
import { launchChromium } from '../helpers/browser';
import { eventually, startServer, TestClient, type RunningServer } from '../helpers/server';

/** A JSON notification body of about `size` bytes that compresses like real text. */
const body = (n: number, size: number) => ({ n, text: `commit ${n}: fix the flaky test `.repeat(Math.ceil(size / 32)) });

/** The server's per-connection deflate streams: ws makes one only when it compresses itself. */
function deflateStreams(s: RunningServer): number {
  const peers = (s.server as unknown as { peers: Set<{ ws: WebSocket & { _extensions: Record<string, { _deflate: unknown }> } }> }).peers;
  return [...peers].filter((p) => p.ws._extensions['permessage-deflate']?._deflate).length;
}

/** The page's WebSocket, as much of it as the test uses (the project's types have no DOM). */
type BrowserSocketClass = new (
  url: string,
) => {
  extensions: string;
  onerror: () => void;
  onopen: () => void;
  onmessage: (e: { data: unknown }) => void;
  send(data: string): void;
};

const bytesRead = (c: TestClient) => (c.ws as unknown as { _socket: Socket })._socket.bytesRead;

async function subscribed(topic: string, ...clients: TestClient[]): Promise<void> {
  for (const c of clients) c.send({ type: 'subscribe', topic });
  await Promise.all(clients.map((c) => c.next('subscribed')));
}

/** Publishes `count` notifications, every other one small (sent uncompressed), and waits for the ack of each. */
async function publishMixed(pub: TestClient, topic: string, count: number): Promise<void> {
  for (let n = 0; n < count; n++) {
    pub.send({ type: 'publish', topic, data: n % 2 ? { n } : body(n, 4000), id: `p${n}` });
    await pub.next('published');
  }
}

const notes = (c: TestClient) => c.messages.filter((m) => m.type === 'notification');

async function serverWith(deflate: ServerConfig['deflate']): Promise<RunningServer> {
  return startServer({ compression: 'offered', deflate });
}

describe('deflate once per message (server.deflate once)', () => {
  let s: RunningServer;
  before(async () => {
    s = await serverWith('once');
  });
  after(() => s?.stop());

  it('one deflate for every compressed subscriber: the same notifications as a plain one, a fraction of the bytes, no stream per connection', async (t) => {
    const [a, b, plain, pub] = await Promise.all([
      TestClient.open(s.url, { perMessageDeflate: true }),
      TestClient.open(s.url, { perMessageDeflate: true }),
      TestClient.open(s.url),
      TestClient.open(s.url),
    ]);
    t.after(() => [a, b, plain, pub].forEach((c) => c.close()));
    assert.match(a.ws.extensions, /permessage-deflate/);
    await subscribed('news', a, b, plain);
    const before = [a, b, plain].map(bytesRead);
    await publishMixed(pub, 'news', 20);
    await eventually(() => [a, b, plain].every((c) => notes(c).length === 20), 5000, 'all 20 notifications');
    assert.deepEqual(notes(a), notes(plain), 'in order, byte for byte the same JSON');
    assert.deepEqual(notes(b), notes(plain));
    assert.deepEqual(
      notes(a).map((m) => (m as { id: string }).id),
      Array.from({ length: 20 }, (_, n) => `p${n}`),
    );
    const [ra, rb, rp] = [a, b, plain].map((c, i) => bytesRead(c) - before[i]);
    assert.ok(ra < rp / 4 && rb < rp / 4, `compressed subscribers read ${ra} and ${rb} bytes, the plain one ${rp}`);
    assert.equal(deflateStreams(s), 0, 'no connection holds a deflate stream');
  });

  it('a client asking for a smaller window than ours gets no extension, and plain frames that decode', async (t) => {
    const [odd, pub] = await Promise.all([
      TestClient.open(s.url, { perMessageDeflate: { serverMaxWindowBits: 9 } }),
      TestClient.open(s.url),
    ]);
    t.after(() => [odd, pub].forEach((c) => c.close()));
    assert.equal(odd.ws.extensions, '');
    await subscribed('odd', odd);
    await publishMixed(pub, 'odd', 4);
    await eventually(() => notes(odd).length === 4, 5000, '4 notifications');
    assert.equal((notes(odd)[0] as { data: { text: string } }).data.text, body(0, 4000).text);
  });

  it('Chromium negotiates the extension and decodes the frames', async (t) => {
    const browser = await launchChromium();
    const pub = await TestClient.open(s.url);
    const plain = await TestClient.open(s.url);
    t.after(async () => {
      pub.close();
      plain.close();
      await browser.close();
    });
    const page = await browser.newPage();
    // A loopback page: Chromium blocks a public context (about:blank) from opening loopback sockets.
    await page.goto(`${s.httpUrl}/healthz`);
    const extensions = await page.evaluate(
      (url) =>
        new Promise<string>((resolve, reject) => {
          const ws = new (globalThis as unknown as { WebSocket: BrowserSocketClass }).WebSocket(url);
          const got: string[] = [];
          Object.assign(globalThis, { got });
          ws.onerror = () => reject(new Error('websocket error'));
          ws.onmessage = (e) => {
            const m = JSON.parse(e.data as string);
            if (m.type === 'subscribed') resolve(ws.extensions);
            if (m.type === 'notification') got.push(e.data as string);
          };
          ws.onopen = () => ws.send(JSON.stringify({ type: 'subscribe', topic: 'browser' }));
        }),
      s.url,
    );
    assert.match(extensions, /permessage-deflate/);
    await subscribed('browser', plain);
    await publishMixed(pub, 'browser', 10);
    await page.waitForFunction(() => (globalThis as unknown as { got: string[] }).got.length === 10, undefined, { timeout: 10_000 });
    const seen = (await page.evaluate(() => (globalThis as unknown as { got: string[] }).got)).map((m) => JSON.parse(m));
    await eventually(() => notes(plain).length === 10, 5000, 'the plain client has all 10');
    assert.deepEqual(seen, notes(plain));
    assert.equal(deflateStreams(s), 0);
  });
});

describe('deflate per connection (server.deflate per-connection), the path compared against', () => {
  it('gives each compressed connection a deflate stream of its own', async (t) => {
    const s = await serverWith('per-connection');
    const [a, pub] = await Promise.all([TestClient.open(s.url, { perMessageDeflate: true }), TestClient.open(s.url)]);
    t.after(async () => {
      a.close();
      pub.close();
      await s.stop();
    });
    await subscribed('news', a);
    await publishMixed(pub, 'news', 2);
    await eventually(() => notes(a).length === 2, 5000, '2 notifications');
    assert.equal(deflateStreams(s), 1);
  });
});

describe('inflate streams of idle clients (server.inflateIdleMs)', () => {
  const peerSockets = (s: RunningServer) => [...(s.server as unknown as { peers: Set<{ ws: WebSocket }> }).peers].map((p) => p.ws);

  it('are released after the idle time, made again by the next compressed message, and never inside a fragmented one', async (t) => {
    const s = await startServer({ compression: 'offered', inflateIdleMs: 300 });
    // threshold 0: the client compresses everything it sends, so the server must inflate.
    const c = await TestClient.open(s.url, { perMessageDeflate: { threshold: 0 } });
    t.after(async () => {
      c.close();
      await s.stop();
    });
    const echo = (id: number) => JSON.stringify({ type: 'echo', id, ts: 1, payload: 'x'.repeat(2000) });
    c.ws.send(echo(1));
    await c.next('echo');
    assert.ok(peerSockets(s).some(holdsInflate), 'a compressed message made an inflate stream');
    await eventually(() => !peerSockets(s).some(holdsInflate), 5000, 'the idle stream is released');
    c.ws.send(echo(2));
    assert.equal((await c.next('echo')).id, 2, 'the next compressed message is inflated by a new stream');

    // The fragments of one message share one inflate context: an idle pause between them must not cut it.
    const [head, tail] = [echo(3).slice(0, 1000), echo(3).slice(1000)];
    await eventually(() => !peerSockets(s).some(holdsInflate), 5000, 'released again');
    c.ws.send(head, { fin: false });
    await eventually(() => peerSockets(s).some(holdsInflate), 5000, 'the first fragment made a stream');
    await new Promise((r) => setTimeout(r, 1200));
    assert.ok(peerSockets(s).some(holdsInflate), 'kept while the message is unfinished');
    c.ws.send(tail, { fin: true });
    assert.equal((await c.next('echo')).id, 3, 'the fragmented message decodes');
  });
});

describe('a compression bomb', () => {
  it('is cut at the message limit after inflation: 1009, and the server keeps serving', async (t) => {
    const s = await startServer({ compression: 'offered', maxMessageBytes: 64 * 1024 });
    const bomb = await TestClient.open(s.url, { perMessageDeflate: { threshold: 0 } });
    t.after(async () => {
      bomb.close();
      await s.stop();
    });
    // 8 MiB of one repeated character: about 8 KB on the wire, 128 times the limit once inflated.
    const text = JSON.stringify({ type: 'echo', id: 1, ts: 1, payload: 'a'.repeat(8 * 1024 * 1024) });
    bomb.ws.send(text);
    assert.equal((await bomb.closed).code, 1009);
    const after = await TestClient.open(s.url, { perMessageDeflate: true });
    t.after(() => after.close());
    after.send({ type: 'echo', id: 2, ts: 1, payload: 'still here' });
    assert.equal((await after.next('echo')).id, 2);
  });
});
