import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeAtSeam } from '../../app/src/server/recovery';

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
