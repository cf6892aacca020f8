import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { LoadReport } from '../app/src/client/report-model';

const ROOT = resolve(__dirname, '..');

/**
 * `npm run local -- ARGS --report r.json` as the README gives it, the entry point itself (no npm
 * in between), its report in a directory of its own: the run the default-run and auth benches repeat.
 */
export function benchLocalRun(args: string[], prefix: string): Promise<{ code: number; report: LoadReport }> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const report = join(dir, 'r.json');
  return new Promise((done, fail) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'scripts/local.ts'), ...args, '--report', report, '--html', join(dir, 'r.html')],
      { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] },
    );
    child.on('error', fail);
    child.on('close', (code) => {
      try {
        done({ code: code ?? 1, report: JSON.parse(readFileSync(report, 'utf8')) });
      } catch (error) {
        fail(new Error(`npm run local ${args.join(' ')} exited ${code} without a report: ${(error as Error).message}`));
      }
    });
  });
}
