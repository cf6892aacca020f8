import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A fresh secret in a file of the run (mode 0600). */
export function writeSecret(dir: string, name: string): string {
  const file = join(dir, name);
  writeFileSync(file, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
  return file;
}
