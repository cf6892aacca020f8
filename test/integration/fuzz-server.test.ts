import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  BROKER_ERROR_CODE,
  BROKER_UNKNOWN_CODE,
  ERROR_CODES,
  SUBSCRIPTION_LIMIT_CODES,
  type ServerMessage,
} from '../../app/src/shared/protocol';
import { brokerReplica, startNats } from '../helpers/nats';
import { TestClient } from '../helpers/server';
import { FUZZ } from '../helpers/fuzz';

/**
 * Random input against a real replica on a real nats-server (fast-check, fixed seed, bounded
 * runs): WebSocket messages near the protocol's shapes, and publish API requests. The replica
 * must answer each with a documented message or status, keep the connection open, and stay up.
 */
const KEY = 'fuzz-test-key-0123456789';
const RUNS = { ...FUZZ, numRuns: Math.min(FUZZ.numRuns, 300) };
const CODES = new Set<string>([...ERROR_CODES, ...SUBSCRIPTION_LIMIT_CODES, BROKER_ERROR_CODE, BROKER_UNKNOWN_CODE]);
const REPLIES = new Set(['hello', 'echo', 'subscribed', 'unsubscribed', 'published', 'notification', 'error']);
const API_STATUSES = new Set([202, 400, 401, 405, 413, 503, 504]);

const topic = fc.oneof(fc.constantFrom('f', 'f.a', 'a..b', '', 'x'.repeat(129)), fc.stringMatching(/^[a-z.]{0,6}$/));
const deep = fc.integer({ min: 1, max: 5_000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`);
/** One client message, as text: the protocol's types with fields right, wrong or missing. */
const wsMessage = fc.oneof(
  fc
    .record({
      type: fc.constant('subscribe'),
      topic,
      since: fc.option(
        fc.record({
          offset: fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER), fc.integer()),
          epoch: fc.oneof(fc.constant('EPOCH'), fc.string()),
        }),
        { nil: undefined },
      ),
    })
    .map((m) => JSON.stringify(m)),
  fc.record({ type: fc.constant('unsubscribe'), topic }).map((m) => JSON.stringify(m)),
  fc
    .record({
      type: fc.constant('publish'),
      topic,
      data: fc.jsonValue(),
      id: fc.option(fc.oneof(fc.integer(), fc.string({ maxLength: 140 })), { nil: undefined }),
    })
    .map((m) => JSON.stringify(m)),
  fc.tuple(topic, deep).map(([t, d]) => `{"type":"publish","topic":${JSON.stringify(t)},"data":${d}}`),
  fc.record({ type: fc.constant('echo'), id: fc.anything(), ts: fc.anything() }).map((m) => JSON.stringify(m) ?? '{}'),
  fc.json(),
  fc.string(),
);
/** One publish API body and its authorization header. */
const apiRequest = fc.record({
  body: fc.oneof(
    fc
      .record({ topic, data: fc.jsonValue(), id: fc.option(fc.oneof(fc.integer(), fc.string({ maxLength: 300 })), { nil: undefined }) })
      .map((b) => JSON.stringify(b)),
    fc.tuple(topic, deep).map(([t, d]) => `{"topic":${JSON.stringify(t)},"data":${d}}`),
    fc.json(),
    fc.string(),
  ),
  auth: fc.constantFrom(`Bearer ${KEY}`, `bearer ${KEY}`, `BEARER  ${KEY}`, 'Bearer wrong', '', `Basic ${KEY}`),
});

/** A replica with the publish API on its own nats-server, both stopped after the test. */
async function fuzzedReplica(t: { after(fn: () => Promise<void>): void }, id: string) {
  const nats = await startNats();
  const replica = await brokerReplica(nats, id, {}, { apiKey: KEY });
  t.after(async () => {
    await replica.server.stop();
    await nats.stop();
  });
  return replica;
}

describe('fuzzing a replica (fast-check, fixed seed, real nats-server)', () => {
  it('answers every WebSocket message with a documented reply, keeps the connection, and stays up', async (t) => {
    const replica = await fuzzedReplica(t, 'fuzz-a');
    const client = await TestClient.open(replica.url);
    t.after(() => client.close());
    const hello = await client.next('hello');
    const epoch = await (async () => {
      client.send({ type: 'subscribe', topic: 'epoch-probe' });
      return (await client.next('subscribed')).epoch!;
    })();
    await fc.assert(
      fc.asyncProperty(wsMessage, async (text) => {
        const before = client.messages.length;
        client.ws.send(text.replace('"EPOCH"', JSON.stringify(epoch)));
        // An echo after it: once its answer is back, every reply to the message is in.
        client.send({ type: 'echo', id: 'fence', ts: 0 });
        await client.next('echo', 10_000);
        const replies = client.messages.slice(before) as ServerMessage[];
        for (const m of replies) {
          assert.ok(REPLIES.has(m.type), `a documented reply: ${JSON.stringify(m).slice(0, 200)}`);
          if (m.type === 'error') assert.ok(CODES.has(m.code), `a documented code: ${m.code}`);
        }
        assert.equal(client.ws.readyState, client.ws.OPEN, 'the connection stays open');
        // Unsubscribe whatever it subscribed, so the per-connection cap is never the answer.
        for (const m of replies)
          if (m.type === 'subscribed' && m.topic !== 'epoch-probe') client.send({ type: 'unsubscribe', topic: m.topic });
      }),
      RUNS,
    );
    assert.equal(hello.replica, 'fuzz-a');
    assert.equal((await fetch(`http://127.0.0.1:${replica.port}/healthz`)).status, 200);
  });

  it('answers every publish API request with a documented status and JSON, and stays up', async (t) => {
    const replica = await fuzzedReplica(t, 'fuzz-b');
    await fc.assert(
      fc.asyncProperty(apiRequest, async ({ body, auth }) => {
        const res = await fetch(`http://127.0.0.1:${replica.port}/api/publish`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
          body,
        });
        assert.ok(API_STATUSES.has(res.status), `a documented status: ${res.status}`);
        const answer = (await res.json()) as { error?: string; field?: string; offset?: number };
        if (res.status === 202) assert.equal(typeof answer.offset, 'number');
        else assert.equal(typeof answer.error, 'string');
      }),
      RUNS,
    );
    assert.equal((await fetch(`http://127.0.0.1:${replica.port}/healthz`)).status, 200);
  });
});
