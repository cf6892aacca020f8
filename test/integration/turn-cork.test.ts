import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { Payload } from '../../app/src/server/deflate-once';
import { Outbox } from '../../app/src/server/outbox';
import { holdForTurn } from '../../app/src/server/turn-cork';

/** Counts the writes a socket hands to the kernel, as chunks per write: its stream's two ways in, one chunk or a writev. */
function countWrites(socket: Socket): number[] {
  const writes: number[] = [];
  const write = socket._write.bind(socket);
  const writev = socket._writev!.bind(socket);
  socket._write = (chunk, encoding, cb) => {
    writes.push(1);
    write(chunk, encoding, cb);
  };
  socket._writev = (chunks, cb) => {
    writes.push(chunks.length);
    writev(chunks, cb);
  };
  return writes;
}

/** A loopback TCP pair, and the writes its server side hands to the kernel. */
async function pair(t: { after(fn: () => unknown): void }) {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  const [socket] = await accepted;
  t.after(() => {
    client.destroy();
    socket.destroy();
    server.close();
  });
  const writes = countWrites(socket);
  let received = '';
  client.on('data', (d) => {
    received += d;
  });
  const receivedAll = async (expected: string) => {
    while (received.length < expected.length) await once(client, 'data');
    assert.equal(received, expected);
  };
  return { socket, writes, receivedAll };
}

const nextTurn = () => new Promise((r) => setImmediate(r));

describe('holdForTurn: frames due in one turn leave in one write', () => {
  it('holds a turn’s writes and hands them to the kernel together, in order; the next turn writes on its own', async (t) => {
    const { socket, writes, receivedAll } = await pair(t);
    for (let i = 0; i < 5; i++) {
      holdForTurn(socket);
      socket.write(`${i};`);
    }
    assert.deepEqual(writes, [], 'nothing leaves during the turn');
    await nextTurn();
    assert.deepEqual(writes, [5], 'five frames, one write');
    holdForTurn(socket);
    socket.write('5;');
    await nextTurn();
    assert.deepEqual(writes, [5, 1]);
    await receivedAll('0;1;2;3;4;5;');
    assert.equal(socket.writableCorked, 0, 'released');
  });

  it('without it, each frame is a write of its own (what the replica did before)', async (t) => {
    const { socket, writes, receivedAll } = await pair(t);
    for (let i = 0; i < 5; i++) socket.write(`${i};`);
    await nextTurn();
    assert.equal(writes.length, 5);
    await receivedAll('0;1;2;3;4;');
  });
});

describe("Outbox: a replica's sends to one connection", () => {
  /** A ws connection pair on loopback, and the writes the server side's socket hands to the kernel. */
  async function wsPair(t: { after(fn: () => unknown): void }) {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    const accepted = once(wss, 'connection') as Promise<[WebSocket, { socket: Socket }]>;
    const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
    t.after(() => {
      client.terminate();
      wss.close();
    });
    const [ws, req] = await accepted;
    await once(client, 'open');
    const got: string[] = [];
    client.on('message', (m, isBinary) => got.push(`${isBinary ? 'binary' : 'text'}:${m}`));
    const receivedAll = async (n: number) => {
      while (got.length < n) await once(client, 'message');
      return got;
    };
    return { ws, socket: req.socket, writes: countWrites(req.socket), receivedAll };
  }
  const texts = (n: number) => Array.from({ length: n }, (_, i) => `text:n${i}`);

  it('ten notifications due in one turn reach the kernel in one write, a whole frame each, and arrive in order', async (t) => {
    const { ws, socket, writes, receivedAll } = await wsPair(t);
    const out = new Outbox(ws, socket, { highWater: 64 * 1024, holdTurn: true, framing: 'text' });
    for (let i = 0; i < 10; i++) out.push(i % 2 ? Payload.of(Buffer.from(`n${i}`)) : Buffer.from(`n${i}`));
    await nextTurn();
    assert.deepEqual(writes, [10], 'a chunk per frame (header and text built together), one writev');
    assert.deepEqual(await receivedAll(10), texts(10));
  });

  it('where ws deflates the connection itself, its send frames them (header and payload: two chunks each), in one write all the same', async (t) => {
    const { ws, socket, writes, receivedAll } = await wsPair(t);
    const out = new Outbox(ws, socket, { highWater: 64 * 1024, holdTurn: true, framing: 'ws' });
    for (let i = 0; i < 10; i++) out.push(Buffer.from(`n${i}`));
    await nextTurn();
    assert.deepEqual(writes, [20]);
    assert.deepEqual(await receivedAll(10), texts(10));
  });

  it('frames written whole keep their order with what ws writes itself on the same socket', async (t) => {
    const { ws, socket, writes, receivedAll } = await wsPair(t);
    const out = new Outbox(ws, socket, { highWater: 64 * 1024, holdTurn: false, framing: 'text' });
    out.push(Buffer.from('n0'));
    ws.send('between');
    out.push(Payload.of(Buffer.from('n1')));
    assert.deepEqual(await receivedAll(3), ['text:n0', 'text:between', 'text:n1']);
    assert.equal(writes.length, 3, 'nothing held: a write each');
  });
});
