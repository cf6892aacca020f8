import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Testing } from 'cdktf';
import { defineTopology } from '../../app/src/topology';
import { WsNotificationsStack } from '../../stacks/ws-notifications-stack';
import { checkProvider, PreflightError } from '../../scripts/preflight';
import { ROOT } from '../helpers/synth';
import { scratchDir } from '../helpers/scratch';

describe('npm run deploy fails fast and says what to do', () => {
  it('names an unreachable Docker engine and the way around it', () => {
    const r = spawnSync('npx', ['tsx', 'scripts/deploy.ts', 'deploy'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, DOCKER_HOST: 'unix:///nonexistent/docker.sock' },
      timeout: 60_000,
    });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /Docker engine is not reachable/);
    assert.match(r.stderr, /npm start/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });

  it('refuses an invalid REPLICAS before touching anything', () => {
    const r = spawnSync('npx', ['tsx', 'scripts/deploy.ts', 'deploy'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, REPLICAS: 'abc' },
      timeout: 60_000,
    });
    assert.equal(r.status, 2, 'a configuration error exits 2 (shared/exit.ts)');
    assert.match(r.stderr, /replicas: REPLICAS="abc" is not a whole number/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });
});

describe('the real terraform reads the synthesized configuration', () => {
  it('finds no configuration error; the provider is installed or its absence is explained', () => {
    const outdir = scratchDir('ws-tf-');
    const app = Testing.app({ outdir });
    const topology = defineTopology({ replicas: 3 });
    new WsNotificationsStack(app, topology.name, { topology, root: ROOT });
    app.synth();
    const stackDir = join(outdir, 'stacks', topology.name);
    try {
      checkProvider(stackDir);
    } catch (error) {
      assert.ok(error instanceof PreflightError, String(error));
      // terraform parses and checks the whole configuration before it looks for providers, so
      // reaching the provider step means the JSON (expressions, lifecycle, references) is valid.
      assert.match(error.what, /kreuzwerker\/docker provider could not be installed/, error.message);
    }
  });
});
