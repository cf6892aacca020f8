import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { CENTRIFUGE_PATH } from '../../app/src/shared/centrifuge';
import { brokerReplica, startNats } from '../helpers/nats';
import { startServer } from '../helpers/server';
import { startIdp } from '../helpers/idp';
import { devAuth } from '../../app/src/topology/auth';

type Reply = Record<string, any>;

/**
 * A bare client of Centrifugo's JSON protocol: what the server sends, frame by frame, checked
 * against the protocol's shapes (client.proto) rather than through an SDK that might forgive them.
 */
class RawClient {
  readonly frames: Reply[][] = [];
  private waiters: Array<() => void> = [];
  closed?: { code: number; reason: string };

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.frames.push(
        String(data)
          .split('\n')
          .map((line) => JSON.parse(line)),
      );
      for (const w of this.waiters.splice(0)) w();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: String(reason) };
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async open(base: string): Promise<RawClient> {
    const ws = new WebSocket(`${base}${CENTRIFUGE_PATH}`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    return new RawClient(ws);
  }

  /** Sends commands in one frame, one per line. */
  send(...commands: object[]): void {
    this.ws.send(commands.map((c) => JSON.stringify(c)).join('\n'));
  }

  get replies(): Reply[] {
    return this.frames.flat();
  }

  /** The first reply (seen or to come) matching `test`. */
  async next(test: (r: Reply) => boolean, what = 'reply'): Promise<Reply> {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const found = this.replies.find(test);
      if (found) return found;
      if (this.closed || Date.now() > deadline)
        throw new Error(`no ${what}; got ${JSON.stringify(this.frames)} ${JSON.stringify(this.closed ?? '')}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  reply(id: number): Promise<Reply> {
    return this.next((r) => r.id === id, `reply ${id}`);
  }

  async closedWith(): Promise<{ code: number; reason: string }> {
    await this.next(() => false).catch(() => undefined);
    return this.closed!;
  }

  close(): void {
    this.ws.close();
  }
}

const httpBase = (url: string) => url.replace(/\/ws-notifications$/, '');

describe("Centrifugo's client protocol on a replica", () => {
  it('connect, subscribe, publish and pushes; errors for what is not built; a bad frame is a 3501 disconnect', async (t) => {
    const server = await startServer({ pingIntervalMs: 300 });
    t.after(() => server.stop());
    const base = httpBase(server.url);

    const early = await RawClient.open(base);
    early.send({ id: 1, subscribe: { channel: 'news' } });
    assert.deepEqual(await early.closedWith(), { code: 3501, reason: 'bad request' }, 'nothing before connect');
    const garbage = await RawClient.open(base);
    garbage.send({ id: 1, connect: {} }, { id: 2, subscribe: { channel: 'a..b' } });
    assert.equal((await garbage.closedWith()).code, 3501, 'a malformed command');

    const c = await RawClient.open(base);
    t.after(() => c.close());
    c.send({ id: 1, connect: {} }, { id: 2, subscribe: { channel: 'news' } });
    const connect = (await c.reply(1)).connect;
    assert.match(connect.client, /^test-0-\d+$/);
    assert.equal(connect.ping, 1, 'seconds, at least one');
    assert.equal(connect.pong, true);
    assert.deepEqual(await c.reply(2), { id: 2, subscribe: {} }, 'no broker: not recoverable, no position');
    c.send({ id: 3, subscribe: { channel: 'news' } });
    assert.equal((await c.reply(3)).error.code, 105, 'already subscribed');
    c.send({ id: 4, presence: { channel: 'news' } }, { id: 5, rpc: { method: 'x' } }, { id: 6, ping: {} });
    assert.equal((await c.reply(4)).error.code, 108, 'presence: not available');
    assert.equal((await c.reply(5)).error.code, 108, 'rpc: not available');
    assert.deepEqual(await c.reply(6), { id: 6, ping: {} });

    // Three publications in one frame: their replies and pushes leave in one frame too.
    const before = c.frames.length;
    c.send(...[1, 2, 3].map((n) => ({ id: 10 + n, publish: { channel: 'news', data: { n } } })));
    await c.reply(13);
    const pushes = c.replies.filter((r) => r.push?.channel === 'news').map((r) => r.push.pub.data.n);
    assert.deepEqual(pushes, [1, 2, 3], 'pushed in order');
    const frames = c.frames.slice(before);
    assert.equal(frames.length, 1, `one frame for the turn: ${JSON.stringify(frames)}`);
    assert.equal(frames[0].length, 6, 'three replies and three pushes, one per line');
    const pub = c.replies.find((r) => r.push?.pub.data.n === 1)!.push.pub;
    assert.deepEqual(Object.keys(pub.tags).sort(), ['replica', 'ts'], 'the native envelope rides in the tags');

    // The server's ping is an empty reply; the client's pong an empty command.
    await c.next((r) => Object.keys(r).length === 0, 'a ping');
    c.send({});
    c.send({ id: 20, unsubscribe: { channel: 'news' } });
    assert.deepEqual(await c.reply(20), { id: 20, unsubscribe: {} });
  });

  it('with the broker: positioned subscriptions, recovery with the missed publications, 112 when asked to refuse a gap, history', async (t) => {
    const nats = await startNats();
    const replica = await brokerReplica(nats, 'cf-0');
    t.after(async () => {
      await replica.server.stop();
      await nats.stop();
    });
    const base = `ws://127.0.0.1:${replica.port}`;
    const a = await RawClient.open(base);
    t.after(() => a.close());
    a.send({ id: 1, connect: {} }, { id: 2, subscribe: { channel: 'orders' } });
    const first = (await a.reply(2)).subscribe;
    assert.equal(first.recoverable, true);
    assert.equal(first.positioned, true);
    assert.equal(typeof first.epoch, 'string');
    a.send(...[1, 2, 3].map((n) => ({ id: 10 + n, publish: { channel: 'orders', data: { n } } })));
    await a.reply(13);
    const offsets = (await Promise.all([1, 2, 3].map((n) => a.next((r) => r.push?.pub.data.n === n)))).map((r) => r.push.pub.offset);

    // A client that saw the first publication recovers the other two, in the subscribe reply.
    const b = await RawClient.open(base);
    t.after(() => b.close());
    b.send({ id: 1, connect: {} }, { id: 2, subscribe: { channel: 'orders', recover: true, offset: offsets[0], epoch: first.epoch } });
    const recovered = (await b.reply(2)).subscribe;
    assert.equal(recovered.was_recovering, true);
    assert.equal(recovered.recovered, true);
    assert.equal(recovered.offset, offsets[0], 'the position recovered from');
    assert.deepEqual(
      recovered.publications.map((p: Reply) => [p.offset, p.data.n]),
      [
        [offsets[1], 2],
        [offsets[2], 3],
      ],
    );

    // Another epoch cannot be recovered: with the reject-unrecovered flag, error 112.
    b.send({ id: 3, subscribe: { channel: 'invoices', recover: true, offset: 1, epoch: 'gone', flag: 2 } });
    assert.equal((await b.reply(3)).error.code, 112);
    b.send({ id: 4, subscribe: { channel: 'invoices', recover: true, offset: 1, epoch: 'gone' } });
    const unrecovered = (await b.reply(4)).subscribe;
    assert.deepEqual([unrecovered.was_recovering, unrecovered.recovered], [true, false], 'without it: subscribed, not recovered');

    // History from the stream: after a position, limited; limit 0 gives the position only.
    b.send({ id: 5, history: { channel: 'orders', limit: 1, since: { offset: offsets[0], epoch: first.epoch } } });
    const history = (await b.reply(5)).history;
    assert.deepEqual(
      history.publications.map((p: Reply) => p.data.n),
      [2],
    );
    assert.equal(history.epoch, first.epoch);
    b.send({ id: 6, history: { channel: 'orders', limit: 0 } });
    const top = (await b.reply(6)).history;
    assert.deepEqual(top.publications, []);
    assert.ok(top.offset >= offsets[2], 'the stream position');
    b.send({ id: 7, history: { channel: 'orders', limit: -1, reverse: true } });
    assert.deepEqual(
      (await b.reply(7)).history.publications.map((p: Reply) => p.data.n),
      [3, 2, 1],
      'everything, newest first',
    );
  });

  it('a subscription token holds a topic no grant allows until it expires; then an unsubscribe push (2501) asks for a fresh one', async (t) => {
    const idp = await startIdp();
    const server = await startServer({}, 'test-0', { auth: devAuth(idp.issuer, { expiryGraceMs: 0 }) });
    t.after(async () => {
      await server.stop();
      await idp.stop();
    });
    const c = await RawClient.open(httpBase(server.url));
    t.after(() => c.close());
    const connection = await idp.token({ sub: 'erin', ttlSeconds: 60 });
    const forOps = await idp.token({ sub: 'erin', channel: 'team.ops', ttlSeconds: 2 });
    c.send({ id: 1, connect: { token: connection } }, { id: 2, subscribe: { channel: 'team.ops' } });
    assert.equal((await c.reply(2)).error.code, 103, 'no grant, no token: permission denied');
    c.send({ id: 3, subscribe: { channel: 'team.ops', token: forOps } });
    const held = (await c.reply(3)).subscribe;
    assert.equal(held.expires, true);
    assert.ok(held.ttl >= 1 && held.ttl <= 2, `ttl ${held.ttl}`);
    c.send({ id: 4, subscribe: { channel: 'team.finance', token: forOps } });
    assert.equal((await c.reply(4)).error.code, 103, 'a token for another topic');
    const other = await idp.token({ sub: 'mallory', channel: 'team.finance', ttlSeconds: 60 });
    c.send({ id: 5, subscribe: { channel: 'team.finance', token: other } });
    assert.equal((await c.reply(5)).error.code, 103, "another subject's token");
    const refreshed = await idp.token({ sub: 'erin', channel: 'team.ops', ttlSeconds: 2 });
    c.send({ id: 6, sub_refresh: { channel: 'team.ops', token: refreshed } });
    assert.equal((await c.reply(6)).sub_refresh.expires, true);
    // Not refreshed again: past its expiry the topic is let go, with the push that makes the SDK resubscribe.
    const push = await c.next((r) => r.push?.unsubscribe !== undefined, 'the unsubscribe push');
    assert.deepEqual(push.push, { channel: 'team.ops', unsubscribe: { code: 2501, reason: 'subscription expired' } });
  });
});
