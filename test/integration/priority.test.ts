import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { GENERATOR_NICE, prioritizeGenerator } from '../../local/priority';

/** The autogroup nice value of a process's session. */
const groupNice = (pid: number) => Number(/nice (-?\d+)/.exec(readFileSync(`/proc/${pid}/autogroup`, 'utf8'))![1]);

describe('the load client\'s priority', () => {
  it('raises a process leading its own session, and its session\'s group, for what it forks later too (root); says why not otherwise', async (t) => {
    // Like the runner's client: its own session; it forks its "worker" a moment after it starts.
    const child = spawn('sh', ['-c', 'sleep 0.5; sleep 30; true'], { detached: true, stdio: 'ignore' });
    t.after(() => process.kill(-child.pid!, 'SIGKILL'));
    const before = groupNice(child.pid!);
    const problem = prioritizeGenerator(child.pid!);
    if (process.getuid?.() !== 0) {
      assert.match(problem ?? '', /EACCES|EPERM|permission/i);
      assert.equal(getPriority(child.pid!), 0);
      assert.equal(groupNice(child.pid!), before);
      return;
    }
    assert.equal(problem, undefined);
    assert.equal(getPriority(child.pid!), GENERATOR_NICE);
    assert.equal(groupNice(child.pid!), GENERATOR_NICE);
    assert.equal(groupNice(process.pid), 0, 'the caller\'s own session is left alone');
    let worker: number | undefined;
    for (let i = 0; i < 50 && !worker; i++) {
      await sleep(100);
      const children = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number);
      worker = children.find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8') === 'sleep\x0030\x00');
    }
    assert.ok(worker, 'the shell forked its second sleep');
    assert.equal(getPriority(worker), GENERATOR_NICE);
    assert.equal(groupNice(worker), GENERATOR_NICE);
  });
});
