import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/** Directories never part of an image's sources (mirrors the .dockerignore files). */
const IGNORED = new Set(['node_modules', 'dist', '.git', 'cdktf.out', 'generated', 'reports', '.deploy']);

/**
 * A hash of every file under the given roots, computed at synth. It goes into the image's
 * `triggers`, so a source change rebuilds the image, and containers that reference the
 * image's id roll with it.
 */
export function hashSources(roots: string[], base: string): string {
  const hash = createHash('sha256');
  const visit = (path: string) => {
    const stat = statSync(path);
    if (stat.isDirectory()) {
      for (const name of readdirSync(path).sort()) {
        if (!IGNORED.has(name)) visit(join(path, name));
      }
    } else if (stat.isFile()) {
      hash.update(relative(base, path)).update('\0').update(readFileSync(path)).update('\0');
    }
  };
  for (const root of roots) visit(root);
  return hash.digest('hex');
}
