import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './synth';

export interface LocalRun {
  readonly child: ChildProcess;
  /** stdout and stderr so far, interleaved. */
  output(): string;
  readonly exited: Promise<number | null>;
}

/**
 * `npm run local` as a user runs it, with flags: through npm (what the README shows), or the entry
 * point itself (`node`: signals reach the runner, not npm).
 */
export function runLocal(args: string[], via: 'node' | 'npm'): LocalRun {
  const argv =
    via === 'npm'
      ? ['npm', 'run', '--silent', 'local', '--', ...args]
      : [process.execPath, '--import', 'tsx', join(ROOT, 'scripts/local.ts'), ...args];
  const child = spawn(argv[0], argv.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout!.on('data', (d) => (text += d));
  child.stderr!.on('data', (d) => (text += d));
  return { child, output: () => text, exited: new Promise((r) => child.on('exit', (code) => r(code))) };
}
