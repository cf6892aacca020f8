import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// One directory per test process, removed when it exits (node --test runs each file in its own),
// so no test leaves its files in the temp directory, whether it passed or failed.
const root = mkdtempSync(join(tmpdir(), 'ws-test-'));
// Like the temp directory itself: nginx's workers (nobody) and containers read files below it.
chmodSync(root, 0o755);
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

/** A new directory for this test process's files, named `prefix` + random characters. */
export function scratchDir(prefix: string): string {
  return mkdtempSync(join(root, prefix));
}
