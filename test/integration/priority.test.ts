import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { autogroupNice, GENERATOR_NICE, prioritizeGenerator } from '../../local/priority';

/** The autogroup nice value of a process's session; undefined in the default group. */
const groupNice = (pid: number) => autogroupNice(readFileSync(`/proc/${pid}/autogroup`, 'utf8'));
const isRoot = process.getuid?.() === 0;

describe("the load client's priority", () => {
  it("reads a session group's nice value, and nothing for the default group", () => {
    assert.equal(autogroupNice('/autogroup-18614 nice 0\n'), 0);
    assert.equal(autogroupNice('/autogroup-7 nice -10\n'), -10);
    assert.equal(autogroupNice(''), undefined);
    assert.equal(autogroupNice('nice -10'), undefined);
  });

  it("raises a process leading its own session, and its session's group, for what it forks later too (root); says why not otherwise", async (t) => {
    // Like the runner's client: its own session; it forks its "worker" a moment after it starts.
    const child = spawn('sh', ['-c', 'sleep 0.5; sleep 30; true'], { detached: true, stdio: 'ignore' });
    t.after(() => process.kill(-child.pid!, 'SIGKILL'));
    const before = groupNice(child.pid!);
    const callerBefore = groupNice(process.pid);
    const result = prioritizeGenerator(child.pid!);
    assert.deepEqual(groupNice(process.pid), callerBefore, "the caller's own session is left alone");
    if (!isRoot) {
      assert.match('problem' in result ? result.problem : '', /EACCES|EPERM|permission/i);
      assert.equal(getPriority(child.pid!), 0);
      assert.equal(groupNice(child.pid!), before);
      return;
    }
    // setsid gives a session its own group, so there is one to raise.
    assert.equal(typeof before, 'number', 'a new session has a group of its own');
    assert.deepEqual(result, { raised: 'process and session' });
    assert.equal(getPriority(child.pid!), GENERATOR_NICE);
    assert.equal(groupNice(child.pid!), GENERATOR_NICE);
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

  // Only a process that never left init's session is in the default group: CI's runner is, an
  // interactive shell is not. Raising a child there must not touch that group (the kernel refuses).
  const inDefaultGroup = groupNice(process.pid) === undefined;
  it('raises a process in the default group by its nice value alone (root)', {
    skip: !isRoot
      ? 'needs root'
      : !inDefaultGroup
        ? "this process has a session group of its own, so it has no child in the default group (CI's runner does)"
        : false,
  }, async (t) => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    t.after(() => child.kill('SIGKILL'));
    assert.equal(groupNice(child.pid!), undefined);
    assert.deepEqual(prioritizeGenerator(child.pid!), { raised: 'process' });
    assert.equal(getPriority(child.pid!), GENERATOR_NICE);
    assert.equal(groupNice(child.pid!), undefined);
  });
});
