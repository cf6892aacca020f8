import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newSecret } from '../certs/secrets';

/** A fresh secret in a file of the run (mode 0600). */
export function writeSecret(dir: string, name: string): string {
  const file = join(dir, name);
  writeFileSync(file, newSecret(), { mode: 0o600 });
  return file;
}
