import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** A long line cut to a window around column `at`, so a message stays readable (and small). */
function around(line: string | undefined, at: number, width = 160): string {
  if (line === undefined) return '(none)';
  if (line.length <= width) return line;
  const start = Math.max(0, at - width / 2);
  return `${start > 0 ? '…' : ''}${line.slice(start, start + width)}${start + width < line.length ? '…' : ''}`;
}

/** The first few differing lines, with line numbers, instead of two whole documents. */
function lineDiff(expected: string, actual: string, limit = 6): string {
  const a = expected.split('\n');
  const b = actual.split('\n');
  const out: string[] = [];
  for (let i = 0; i < Math.max(a.length, b.length) && out.length < limit; i++) {
    if (a[i] === b[i]) continue;
    let col = 0;
    while (a[i] !== undefined && b[i] !== undefined && a[i][col] === b[i][col]) col++;
    out.push(`  line ${i + 1}, column ${col + 1}\n    - ${around(a[i], col)}\n    + ${around(b[i], col)}`);
  }
  return out.join('\n');
}

/**
 * Compares text with a stored snapshot under test/snapshots/. UPDATE_SNAPSHOTS=1 rewrites it;
 * a missing snapshot fails in CI (CI=true) instead of being silently written.
 */
export function matchSnapshot(name: string, actual: string): void {
  const file = resolve(__dirname, '../snapshots', name);
  if (process.env.UPDATE_SNAPSHOTS === '1' || (!existsSync(file) && process.env.CI !== 'true')) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  assert.ok(existsSync(file), `snapshot ${name} is missing; run UPDATE_SNAPSHOTS=1 npm test`);
  const expected = readFileSync(file, 'utf8');
  if (expected !== actual) {
    assert.fail(`snapshot ${name} differs (if intended: UPDATE_SNAPSHOTS=1 npm test):\n${lineDiff(expected, actual)}`);
  }
}
