import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { applyDelta, createDelta } from 'fossil-delta';
import { applyFossilDelta } from '../../app/src/client/fossil';
import { webhookEventNames, webhookSequence } from '../../app/src/shared/webhook-examples';

const bytes = (s: string) => Buffer.from(s);
const deltaOf = (base: Uint8Array, target: Uint8Array) => Buffer.from(createDelta(base, target));

describe('applyFossilDelta: the load client’s fossil applier', () => {
  it('rebuilds every consecutive pair of real webhook payloads, both ways, as fossil-delta does', () => {
    const texts = webhookSequence(webhookEventNames()).map((e) => bytes(e.text));
    assert.ok(texts.length > 100, `${texts.length} payloads`);
    for (let i = 1; i < texts.length; i++) {
      for (const [base, target] of [
        [texts[i - 1], texts[i]],
        [texts[i], texts[i - 1]],
      ]) {
        const delta = deltaOf(base, target);
        const rebuilt = applyFossilDelta(base, delta);
        assert.ok(Buffer.from(rebuilt).equals(target), `pair ${i}`);
        assert.ok(Buffer.from(rebuilt).equals(Buffer.from(applyDelta(base, delta))), `pair ${i}: the library agrees`);
      }
    }
  });

  it('handles the edges: empty base or target, the same bytes, unrelated random bytes, every tail length', () => {
    const random = randomBytes(5_000);
    const cases: [Uint8Array, Uint8Array][] = [
      [bytes(''), bytes('hello')],
      [bytes('hello'), bytes('')],
      [random, random],
      [random, randomBytes(4_999)],
      ...[0, 1, 2, 3].map((n): [Uint8Array, Uint8Array] => [random, random.subarray(0, 4_096 + n)]),
    ];
    for (const [base, target] of cases) assert.ok(Buffer.from(applyFossilDelta(base, deltaOf(base, target))).equals(target));
  });

  it('refuses a delta that is corrupt, truncated or against another base, naming why', () => {
    const base = bytes('{"action":"opened","number":1,"title":"a title long enough to be copied from"}');
    const target = bytes('{"action":"closed","number":1,"title":"a title long enough to be copied from"}');
    const delta = deltaOf(base, target);
    assert.ok(Buffer.from(applyFossilDelta(base, delta)).equals(target));
    const text = delta.toString('latin1');
    const cases: [string, Uint8Array, Uint8Array, RegExp][] = [
      ['truncated', base, delta.subarray(0, delta.length - 3), /unterminated|bad checksum|announced/],
      ['checksum', base, Buffer.from(text.replace(/[\w~]+;$/, '1;'), 'latin1'), /bad checksum/],
      ['another base', bytes('x'.repeat(base.length)), delta, /bad checksum/],
      ['a shorter base', base.subarray(0, 10), delta, /past the end of the base/],
      ['no size line', base, bytes('zz'), /newline|unterminated/],
      ['unknown operator', base, bytes('5\n5!hello'), /unknown operator/],
      ['an insert past the end', base, bytes('A\n9:hel'), /past the end of the delta/],
      ['more than announced', base, bytes('2\n5:hello0;'), /exceeds its announced size/],
    ];
    for (const [name, b, d, message] of cases) assert.throws(() => applyFossilDelta(b, d), message, name);
  });
});
