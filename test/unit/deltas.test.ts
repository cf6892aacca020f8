import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createDelta } from 'fossil-delta';
import { DeltaDecoder } from '../../app/src/client/deltas';
import { resolveOptions } from '../../app/src/client/options';
import { payloadSource } from '../../app/src/client/payloads';
import { TopicDeltas, withForm } from '../../app/src/server/deltas';
import { ConfigError } from '../../app/src/shared/errors';
import { loadProfileSchema } from '../../app/src/shared/profile';
import { parseClientMessage, type ServerMessage } from '../../app/src/shared/protocol';
import { webhookSequence } from '../../app/src/shared/webhook-examples';
import { defineTopology, fromServerEnv } from '../../app/src/topology';

type Notification = Extract<ServerMessage, { type: 'notification' }>;
const note = (topic: string, offset: number, data: unknown, epoch = 'e1'): Notification => ({
  type: 'notification',
  topic,
  data,
  replica: 'r',
  offset,
  epoch,
});

describe('TopicDeltas: one delta per publication, only for a subscriber holding its base', () => {
  const pr = webhookSequence(['pull_request']);
  it('gives the delta to a subscriber on the previous offset and the full text to any other', () => {
    const deltas = new TopicDeltas(['repo.*']);
    assert.equal(deltas.advance(note('news', 1, {})), undefined, 'a topic not listed has no deltas');
    const first = deltas.advance(note('repo.a', 1, pr[0].payload))!;
    assert.equal(first.formFor(undefined).kind, 'json', 'nothing came before the first');
    const second = deltas.advance(note('repo.a', 5, pr[1].payload))!;
    const delta = second.formFor({ epoch: 'e1', offset: 1 });
    assert.equal(delta.kind, 'delta');
    assert.equal(second.formFor({ epoch: 'e1', offset: 1 }), delta, 'made once, the same for every subscriber');
    assert.equal(second.formFor({ epoch: 'e1', offset: 0 }).kind, 'json', 'a subscriber behind the base gets it in full');
    assert.equal(second.formFor({ epoch: 'e2', offset: 1 }).kind, 'json', 'another epoch is another stream');
    assert.equal(second.formFor(undefined).kind, 'json');
    const rebuilt = new DeltaDecoder();
    rebuilt.decode('repo.a', { json: pr[0].text });
    assert.equal(Buffer.from(rebuilt.decode('repo.a', { delta: (delta as { text: string }).text }).text).toString(), pr[1].text);
  });

  it('sends in full what a delta would not shrink, and what would split a character', () => {
    const deltas = new TopicDeltas(['>']);
    deltas.advance(note('t', 1, 'a'));
    assert.equal(deltas.advance(note('t', 2, 'b'))!.formFor({ epoch: 'e1', offset: 2 - 1 }).kind, 'json', 'a tiny payload');
    // é and è share their first UTF-8 byte: the delta copies it and inserts only the second, no text.
    const base = `${'a'.repeat(80)}é${'b'.repeat(80)}`;
    const next = `${'a'.repeat(80)}è${'b'.repeat(80)}`;
    assert.equal(
      Buffer.from(createDelta(Buffer.from(JSON.stringify(base)), Buffer.from(JSON.stringify(next))))
        .toString('utf8')
        .includes('\uFFFD'),
      true,
    );
    deltas.advance(note('u', 1, base));
    assert.equal(deltas.advance(note('u', 2, next))!.formFor({ epoch: 'e1', offset: 1 }).kind, 'json');
  });

  it('remembers a replayed publication as the base unless a later one is known', () => {
    const deltas = new TopicDeltas(['repo.*']);
    deltas.remember(note('repo.a', 4, pr[0].payload));
    assert.equal(deltas.advance(note('repo.a', 6, pr[1].payload))!.base?.offset, 4);
    deltas.remember(note('repo.a', 5, pr[2].payload));
    assert.equal(deltas.advance(note('repo.a', 7, pr[2].payload))!.base?.offset, 6, 'an older replay does not replace a newer base');
  });

  it('puts the data as json or delta in place of data on the native wire', () => {
    const n = note('t', 1, { a: 1 });
    assert.deepEqual(withForm(n, { kind: 'json', text: '{"a":1}' }), {
      type: 'notification',
      topic: 't',
      json: '{"a":1}',
      replica: 'r',
      offset: 1,
      epoch: 'e1',
    });
    assert.equal(withForm(n, { kind: 'data' }), n);
  });
});

describe('DeltaDecoder: a delta that does not apply is refused', () => {
  it('refuses a delta before any full payload, and one made against another base (fossil checksum)', () => {
    const decoder = new DeltaDecoder();
    const [a, b, c] = webhookSequence(['push']).map((e) => e.text);
    const delta = Buffer.from(createDelta(Buffer.from(a), Buffer.from(b))).toString();
    assert.throws(() => decoder.decode('t', { delta }), /before any full payload/);
    decoder.decode('t', { json: c });
    assert.throws(() => decoder.decode('t', { delta }));
    decoder.decode('t', { json: a });
    assert.equal(Buffer.from(decoder.decode('t', { delta }).text).toString(), b);
  });
});

describe('real payloads: @octokit/webhooks-examples', () => {
  it('interleaves the events given, one example of each in turn, until every example is in', () => {
    const seq = webhookSequence(['push', 'create']);
    assert.deepEqual(
      seq.slice(0, 4).map((e) => `${e.event}#${e.example}`),
      ['push#0', 'create#0', 'push#1', 'create#1'],
    );
    assert.equal(seq.length, webhookSequence(['push']).length + webhookSequence(['create']).length);
    assert.deepEqual(JSON.parse(seq[0].text), seq[0].payload);
  });

  it('each publisher walks the sequence in order, to its own topic', () => {
    const source = payloadSource({ source: 'github-webhooks', events: ['push', 'issues'] });
    const seq = webhookSequence(['push', 'issues']);
    const p = [0, 1, 2].map((n) => source.publication(3, n));
    assert.ok(p.every((x) => x.ownTopic));
    assert.deepEqual(
      p.map((x) => x.data),
      [3, 4, 5].map((i) => ({ from: 3, event: seq[i].event, example: seq[i].example, payload: seq[i].payload })),
    );
    assert.equal(source.echo(3, 0), seq[3].text);
  });

  it('knows a publication as sent: a rebuilt payload that differs by one byte does not match', () => {
    const source = payloadSource({ source: 'github-webhooks', events: ['push', 'issues'] });
    const rebuilt = JSON.parse(JSON.stringify({ ...(source.publication(0, 1).data as object), ts: 1 }));
    assert.equal(typeof rebuilt.payload.action, 'string', 'an issues payload');
    assert.equal(source.matches(rebuilt), true);
    assert.equal(source.matches({ ...rebuilt, payload: { ...rebuilt.payload, action: `${rebuilt.payload.action}.` } }), false);
    assert.equal(source.matches({ ...rebuilt, example: 999 }), false, 'no such example');
    assert.equal(payloadSource({ kind: 'fixed', bytes: 8 }).matches({ from: 1 }), undefined, 'synthetic: nothing to compare');
  });

  it('refuses an event without examples, naming it', () => {
    const result = loadProfileSchema.safeParse({ payload: { source: 'github-webhooks', events: ['push', 'pushh'] } });
    assert.equal(result.success, false);
    assert.deepEqual(result.error!.issues[0].path, ['payload', 'events', 1]);
    assert.match(result.error!.issues[0].message, /pushh is not an event with examples/);
  });

  it('--payload github-webhooks:... and --delta set the profile', () => {
    const { profile } = resolveOptions(['ws://127.0.0.1:1/ws', '--payload', 'github-webhooks:push,issues', '--delta'], {});
    assert.deepEqual(profile.payload, { source: 'github-webhooks', events: ['push', 'issues'] });
    assert.equal(profile.delta, true);
    assert.throws(() => resolveOptions(['ws://127.0.0.1:1/ws', '--payload', 'github:push'], {}), /--payload/);
  });
});

describe('server.deltaTopics', () => {
  it('is refused without the broker, and with a {sub} pattern, naming the field', () => {
    for (const [input, rule] of [
      [{ server: { deltaTopics: ['repo.*'] }, broker: { enabled: false } }, /needs broker\.enabled/],
      [{ server: { deltaTopics: ['user.{sub}'] } }, /no subject/],
    ] as const) {
      assert.throws(
        () => defineTopology(input as never),
        (error: unknown) =>
          error instanceof ConfigError && error.problems.some((p) => p.field.startsWith('server.deltaTopics') && rule.test(p.rule)),
      );
    }
  });

  it('travels as WS_DELTA_TOPICS', () => {
    assert.deepEqual(fromServerEnv({ WS_DELTA_TOPICS: 'repo.*,feed.>' }).deltaTopics, ['repo.*', 'feed.>']);
  });

  it("a subscribe asks with delta: 'fossil' and nothing else", () => {
    assert.deepEqual(parseClientMessage('{"type":"subscribe","topic":"a","delta":"fossil"}'), {
      ok: true,
      message: { type: 'subscribe', topic: 'a', delta: 'fossil' },
    });
    const other = parseClientMessage('{"type":"subscribe","topic":"a","delta":"xdelta"}');
    assert.equal(other.ok, false);
    assert.match((other as { message: string }).message, /subscribe\.delta must be 'fossil'/);
  });
});
