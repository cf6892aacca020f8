import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeliveryLedger, settleDeliveries } from '../../app/src/client/delivery';

test('what each subscriber was owed is settled over every process: stored offsets, windows, first copies', () => {
  // Process A publishes on t0 and t1 (offsets are stream positions, shared by the topics).
  const a = new DeliveryLedger();
  for (const o of [2, 4, 6]) a.acknowledge('t0', o);
  a.acknowledge('t0', 4); // a retried publication, stored once
  a.acknowledge('t1', 5);
  // Process B: two subscribers of t0 and one of t1.
  const b = new DeliveryLedger();
  const early = b.open('t0', 1); // owes 2, 4, 6
  const late = b.open('t0', 3); // owes 4, 6
  const other = b.open('t1', 0); // owes 5
  for (const o of [2, 4, 6]) b.receive(early, o);
  b.receive(late, 4); // 6 never came
  b.receive(late, 3); // before its window: not owed, not counted
  b.receive(other, 5);
  b.receive(other, 7); // an ack lost with its connection: stored, but nobody knows it was
  b.close(early, null);
  b.close(late, null);
  b.close(other, null);
  const account = settleDeliveries([a.serialize(), b.serialize()]);
  assert.deepEqual(account, { windows: 3, published: 4, expected: 6, received: 5, lost: 1 });
});

test('a subscriber retired mid-run owes nothing after its last offset; a reopened window forgets the gap', () => {
  const l = new DeliveryLedger();
  for (const o of [10, 20, 30, 40]) l.acknowledge('t', o);
  const retired = l.open('t', 5);
  l.receive(retired, 10);
  l.close(retired, 10); // left after 10: 20..40 are not its
  l.close(retired, null); // the first close stands
  const recovered = l.open('t', 5);
  l.receive(recovered, 10);
  l.close(recovered, 10); // unrecoverable after 10: a new window from 30
  const again = l.open('t', 30);
  l.receive(again, 40);
  l.close(again, null);
  assert.deepEqual(settleDeliveries([l.serialize()]), { windows: 3, published: 4, expected: 3, received: 3, lost: 0 });
});

test('without a broker nothing is owed', () => {
  assert.deepEqual(settleDeliveries([new DeliveryLedger().serialize()]), { windows: 0, published: 0, expected: 0, received: 0, lost: 0 });
});
