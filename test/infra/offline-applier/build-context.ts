import { readFileSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Readable } from 'node:stream';
import dockerignore from '@balena/dockerignore';
// tar-fs has no bundled types; its pack() is all we need.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tar = require('tar-fs') as { pack(dir: string, opts: { ignore(name: string): boolean }): Readable };

/** The build context as `docker build` sends it: the directory, minus what .dockerignore excludes. */
export function packContext(context: string): Readable {
  const file = join(context, '.dockerignore');
  const ignore = existsSync(file) ? dockerignore().add(readFileSync(file, 'utf8')) : dockerignore();
  return tar.pack(context, { ignore: (name) => ignore.ignores(relative(context, name)) });
}
