import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { appSourceHash, builtApp } from '../../local/build';
import { scratchDir } from '../helpers/scratch';

describe('the compiled app the local runner runs (local/build.ts)', () => {
  it('is built once for callers at the same time, kept by source hash, and reused', async (t) => {
    const cache = scratchDir('ws-build-');
    t.after(() => rmSync(cache, { recursive: true, force: true }));
    const dirs = await Promise.all([builtApp(cache), builtApp(cache), builtApp(cache)]);
    assert.deepEqual(new Set(dirs), new Set([join(cache, appSourceHash())]));
    assert.deepEqual(readdirSync(cache), [appSourceHash()], 'one build, no leftover lock or temporary directory');
    const main = join(dirs[0], 'dist', 'server', 'main.js');
    const built = statSync(main).mtimeMs;
    assert.equal(await builtApp(cache), dirs[0]);
    assert.equal(statSync(main).mtimeMs, built, 'reused, not rebuilt');
    // What it builds runs (in the repository's cache, where node finds the dependencies): the client's --help, no tsx.
    const help = spawnSync(process.execPath, [join(await builtApp(), 'dist', 'client', 'main.js'), '--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /--ca/);
  });

  it('takes over a lock left by a build that died', async (t) => {
    const cache = scratchDir('ws-build-');
    t.after(() => rmSync(cache, { recursive: true, force: true }));
    const lock = join(cache, `${appSourceHash()}.lock`);
    mkdirSync(lock, { recursive: true });
    const long = new Date(Date.now() - 10 * 60_000);
    utimesSync(lock, long, long);
    const dir = await builtApp(cache);
    assert.ok(existsSync(join(dir, 'dist', 'server', 'main.js')));
    assert.equal(existsSync(lock), false);
  });
});
