import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * What a local run leaves if it dies (SIGKILL, a crash): its children run in their own process
 * groups, so they outlive it. Every run writes `owner.json` (its pid and its children's) into
 * its runtime directory, and every child carries `WS_LOCAL_RUN=<that directory>` in its
 * environment (nginx: its config path in that directory). The next start kills the children of
 * runs whose owner is gone, if they still carry the mark (a pid may have been reused), and
 * removes those directories. Runs stopped with --keep-logs drop owner.json and are left alone.
 */
export const RUN_PREFIX = 'ws-local-';
export const RUN_MARK_ENV = 'WS_LOCAL_RUN';
const OWNER_FILE = 'owner.json';

interface Owner {
  pid: number;
  children: number[];
}

/** Whether a process is running (EPERM: it is, another user's; a zombie is not). */
export const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A zombie answers signals but has exited: it only waits for its parent to reap it (this
  // process, for a daemon it started, while its event loop is busy).
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
};

/**
 * True when the process still carries this run's mark (so it is ours, not a reused pid). nginx
 * overwrites its environment with its process title, but that title names its config, which
 * lives in the run's directory.
 */
export function belongsToRun(pid: number, runDir: string): boolean {
  const read = (file: string) => {
    try {
      return readFileSync(`/proc/${pid}/${file}`, 'utf8').split('\0');
    } catch {
      return [];
    }
  };
  return read('environ').includes(`${RUN_MARK_ENV}=${runDir}`) || read('cmdline').some((arg) => arg.includes(`${runDir}/`));
}

/** Records this run's children (called whenever one starts). */
export function recordOwner(runDir: string, children: number[]): void {
  writeFileSync(join(runDir, OWNER_FILE), JSON.stringify({ pid: process.pid, children } satisfies Owner));
}

/** Drops the record: the run ended cleanly and its directory is kept on purpose (--keep-logs). */
export function releaseOwner(runDir: string): void {
  rmSync(join(runDir, OWNER_FILE), { force: true });
}

/** Kills the children of dead runs and removes their directories; returns what it cleaned. */
export function reapDeadRuns(root = tmpdir()): { runs: string[]; killed: number[] } {
  const runs: string[] = [];
  const killed: number[] = [];
  for (const name of readdirSync(root)) {
    if (!name.startsWith(RUN_PREFIX)) continue;
    const dir = join(root, name);
    const file = join(dir, OWNER_FILE);
    if (!existsSync(file)) continue;
    let owner: Owner;
    try {
      owner = JSON.parse(readFileSync(file, 'utf8')) as Owner;
    } catch {
      continue;
    }
    if (owner.pid === process.pid || alive(owner.pid)) continue;
    for (const pid of owner.children) {
      if (!belongsToRun(pid, dir)) continue;
      // Each child leads its own process group (nginx's workers with their master).
      for (const target of [-pid, pid]) {
        try {
          process.kill(target, 'SIGKILL');
          break;
        } catch {
          // no such group: the pid alone
        }
      }
      killed.push(pid);
    }
    rmSync(dir, { recursive: true, force: true });
    runs.push(dir);
  }
  return { runs, killed };
}
