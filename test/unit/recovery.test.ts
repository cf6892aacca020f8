import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { askPatiently, mergeAtSeam } from '../../app/src/server/recovery';
import { RecentDeliveries } from '../../app/src/server/recent-deliveries';

const n = (...offsets: number[]) => offsets.map((offset) => ({ offset }));
const offsets = (xs: { offset?: number }[]) => xs.map((x) => x.offset);

describe('the seam of a recovery', () => {
  it('sends the replay, then only the held notifications after it', () => {
    assert.deepEqual(offsets(mergeAtSeam(n(21, 24, 30), n(24, 30, 31, 35), 20)), [21, 24, 30, 31, 35]);
  });
  it('sends nothing at or below what the client had', () => {
    assert.deepEqual(offsets(mergeAtSeam([], n(18, 20, 22), 20)), [22]);
  });
  it('keeps order when the live consumer was ahead of the replay', () => {
    assert.deepEqual(offsets(mergeAtSeam(n(21, 22), n(23, 22, 24), 20)), [21, 22, 23, 24]);
  });
});

describe('recent deliveries (recoveries from memory)', () => {
  const d = (offset: number) => ({ offset });
  it('answers a gap inside what it holds, and nothing it cannot vouch for', () => {
    const recent = new RecentDeliveries<{ offset: number }>(100, { perTopic: 3, maxTopics: 2, maxBytes: Infinity });
    assert.equal(recent.after('a', 99), undefined, 'before the replica started: not in memory');
    assert.deepEqual(recent.after('a', 100), [], 'nothing published since: nothing owed');
    for (const [topic, offset] of [
      ['a', 101],
      ['b', 102],
      ['a', 103],
      ['a', 104],
    ] as const)
      recent.add(topic, d(offset), 1);
    assert.deepEqual(recent.after('a', 100), [d(101), d(103), d(104)]);
    assert.deepEqual(recent.after('a', 103), [d(104)]);
    assert.deepEqual(recent.after('b', 100), [d(102)]);
    recent.add('a', d(105), 1);
    assert.equal(recent.after('a', 100), undefined, 'the window dropped 101: from 100 it would miss it');
    assert.deepEqual(recent.after('a', 101), [d(103), d(104), d(105)]);
  });

  it('after offsets it never saw (the stream dropped them first), vouches for no topic before them', () => {
    const recent = new RecentDeliveries<{ offset: number }>(0, { perTopic: 10, maxTopics: 10, maxBytes: Infinity });
    recent.add('a', d(1), 1);
    recent.add('b', d(2), 1);
    recent.add('a', d(7), 1); // 3..6 skipped: any topic's
    assert.equal(recent.after('a', 1), undefined, 'a may have had 3..6');
    assert.equal(recent.after('b', 2), undefined, 'so may b');
    assert.deepEqual(recent.after('a', 6), [d(7)]);
    assert.deepEqual(recent.after('c', 6), []);
    // A full window dropping an offset from before the skip does not bring the vouching back.
    const small = new RecentDeliveries<{ offset: number }>(0, { perTopic: 2, maxTopics: 10, maxBytes: Infinity });
    for (const o of [1, 2, 7, 8]) small.add('a', d(o), 1);
    assert.equal(small.after('a', 2), undefined);
  });

  it('forgets whole topics beyond its limit, and then vouches only from the newest offset on', () => {
    const recent = new RecentDeliveries<{ offset: number }>(0, { perTopic: 10, maxTopics: 2, maxBytes: Infinity });
    recent.add('a', d(1), 1);
    recent.add('b', d(2), 1);
    recent.add('c', d(3), 1); // forgets a
    assert.equal(recent.after('a', 0), undefined, 'a forgotten topic is not claimed gap-free');
    assert.deepEqual(recent.after('a', 2), [], 'after the newest offset at the time, nothing of a was missed');
    assert.deepEqual(recent.after('c', 2), [d(3)]);
    assert.equal(recent.after('c', 1), undefined);
  });

  it('holds at most maxBytes, dropping the oldest delivery of any topic first, and vouches only after what it dropped', () => {
    const recent = new RecentDeliveries<{ offset: number }>(0, { perTopic: 100, maxTopics: 100, maxBytes: 10 });
    recent.add('a', d(1), 4);
    recent.add('b', d(2), 4);
    assert.equal(recent.bytes, 8);
    recent.add('a', d(3), 4); // 12 > 10: drops 1 (a's oldest)
    assert.equal(recent.bytes, 8);
    assert.equal(recent.after('a', 0), undefined, 'a lost offset 1');
    assert.deepEqual(recent.after('a', 1), [d(3)]);
    assert.deepEqual(recent.after('b', 0), [d(2)], 'b kept all it had');
    recent.add('c', d(4), 11); // larger than the whole budget: not kept, and c is vouched for only after it
    assert.equal(recent.bytes, 8);
    assert.equal(recent.after('c', 3), undefined);
    assert.deepEqual(recent.after('c', 4), []);
  });

  it('keeps its byte count and queue bounded through a long run of a busy topic beside a quiet one', () => {
    const recent = new RecentDeliveries<{ offset: number }>(0, { perTopic: 4, maxTopics: 10, maxBytes: 1000 });
    recent.add('quiet', d(1), 10);
    for (let o = 2; o <= 100_000; o++) recent.add('busy', d(o), 10);
    assert.equal(recent.bytes, 50, 'four busy deliveries and the quiet one');
    assert.ok((recent as unknown as { queue: unknown[] }).queue.length < 3000, 'dropped entries leave the queue');
    assert.deepEqual(recent.after('quiet', 0), [d(1)]);
  });

  it('answers nothing for an offset past the newest it delivered: the broker decides whether it exists', () => {
    const recent = new RecentDeliveries<{ offset: number }>(10, { perTopic: 10, maxTopics: 10, maxBytes: Infinity });
    recent.add('a', d(11), 1);
    assert.equal(recent.after('a', 12), undefined);
    assert.equal(recent.after('a', Number.MAX_SAFE_INTEGER), undefined);
  });
});

describe('asking a broker that does not answer', () => {
  const failing = (times: number) => {
    let calls = 0;
    return {
      ask: async () => {
        if (++calls <= times) throw new Error(`no answer ${calls}`);
        return calls;
      },
      calls: () => calls,
    };
  };

  it('asks again until it answers, telling each failure', async () => {
    const broker = failing(2);
    const told: boolean[] = [];
    const answer = await askPatiently(
      broker.ask,
      () => true,
      (_, retrying) => told.push(retrying),
      10_000,
    );
    assert.deepEqual([answer, told], [3, [true, true]]);
  });

  it('gives up once its patience is spent, or at once when nobody wants the answer any more', async () => {
    const spent = failing(100);
    const told: boolean[] = [];
    assert.equal(
      await askPatiently(
        spent.ask,
        () => true,
        (_, retrying) => told.push(retrying),
        1_500,
      ),
      undefined,
    );
    // Asked at 0, about 1 and 1.5 s: every failure but the last says another ask follows.
    assert.ok(told.length >= 3 && told.at(-1) === false && told.slice(0, -1).every(Boolean), String(told));
    const unwanted = failing(100);
    assert.equal(
      await askPatiently(
        unwanted.ask,
        () => false,
        () => undefined,
        10_000,
      ),
      undefined,
    );
    assert.equal(unwanted.calls(), 1);
  });
});
