import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveOptions } from '../../app/src/client/options';
import { hardTimeLimitMs, loadProfileSchema } from '../../app/src/shared/profile';

describe('the hard time limit of a run', () => {
  it('is one rule: twice the run plus a minute, never under the default', () => {
    const defaultLimit = loadProfileSchema.parse({}).maxDurationMs;
    assert.equal(hardTimeLimitMs(10_000), defaultLimit);
    assert.equal(hardTimeLimitMs(600_000), 1_260_000);
  });

  it('is what the load client sets for --duration, and --max-duration overrides it', () => {
    const limit = (...flags: string[]) => resolveOptions(['ws://127.0.0.1:1/ws', ...flags], {}).profile.maxDurationMs;
    assert.equal(limit('--duration', '10m'), hardTimeLimitMs(600_000));
    assert.equal(limit('--duration', '10m', '--max-duration', '30m'), 1_800_000);
  });
});
