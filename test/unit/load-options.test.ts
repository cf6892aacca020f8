import { resolve } from 'node:path';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveOptions } from '../../app/src/client/options';
import { hardTimeLimitMs, loadProfileSchema } from '../../app/src/shared/profile';
import { ConfigError } from '../../app/src/shared/errors';
import { localCommand, planLocalRun, type LocalFlags } from '../../local/cli';

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

describe('the local runner reads its load flags as the load client does', () => {
  const plan = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    planLocalRun(localCommand().parse(args, { from: 'user' }).opts<LocalFlags>(), '1.22.1', env);
  const fieldOf = (run: () => unknown) => {
    try {
      run();
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return error.problems.map((p) => p.field);
    }
    assert.fail('no ConfigError');
  };

  it('--auth turns tokens on and a later --no-auth off again (npm start passes --auth first)', () => {
    assert.equal(plan([]).auth, undefined);
    assert.deepEqual(plan(['--auth', '--token-ttl', '20s']).auth, { tokenTtlMs: 20_000, tokenVia: 'header' });
    assert.equal(plan(['--auth', '--no-auth']).auth, undefined);
    assert.equal(plan(['--auth', '--token-in', 'message']).auth?.tokenVia, 'message');
    // The topology says so too: jwt (the development IdP, started by the run) or a trusted loopback.
    assert.deepEqual([plan(['--auth']).topology.auth.mode, plan(['--auth']).topology.server.clientPublish], ['jwt', false]);
    assert.deepEqual([plan([]).topology.auth.mode, plan([]).topology.server.clientPublish], ['none', true]);
  });

  it('--publish-api: the load client publishes through the proxy with the key, and without --auth clients may not publish', () => {
    const { topology } = plan(['--publish-api', '--api-key-file', 'k.txt']);
    assert.deepEqual(topology.load.publishApi, { keyFile: resolve('k.txt') });
    assert.deepEqual([topology.proxy.publishApi, topology.server.apiKeyFile], [true, resolve('k.txt')]);
    assert.deepEqual([topology.auth.mode, topology.server.clientPublish], ['none', false]);
    assert.equal(plan(['--auth', '--publish-api', '--api-key-file', 'k.txt']).topology.auth.mode, 'jwt');
    assert.deepEqual(
      fieldOf(() => plan(['--publish-api'])),
      ['--publish-api'],
    );
  });

  it('the same stage and hard time limit for --connections, --duration and --ramp-rate', () => {
    const flags = ['--connections', '500', '--duration', '10m', '--ramp-rate', '50'];
    const { load } = plan(flags).topology;
    const client = resolveOptions(['ws://127.0.0.1:1/ws', ...flags], {}).profile;
    assert.deepEqual([load.stages, load.maxDurationMs], [client.stages, client.maxDurationMs]);
    assert.equal(load.maxDurationMs, hardTimeLimitMs(600_000));
  });

  it('--replicas wins over REPLICAS, which wins over the default', () => {
    assert.equal(plan(['--replicas', '4'], { REPLICAS: '2' }).topology.replicas, 4);
    assert.equal(plan([], { REPLICAS: '2' }).topology.replicas, 2);
  });

  it('refuses what it cannot run before starting anything, naming the flag', () => {
    const cases: [string[], string][] = [
      [['--connections', 'many'], '--connections'],
      [['--duration', 'soon'], '--duration'],
      [['--fault', 'kill-replica:7@5s', '--replicas', '2'], '--fault'],
      [['--ha', '--strategy', 'ip_hash'], '--strategy'],
    ];
    for (const [args, field] of cases)
      assert.deepEqual(
        fieldOf(() => plan(args)),
        [field],
        args.join(' '),
      );
  });
});
