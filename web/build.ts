import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildSync } from 'esbuild';

const ROOT = join(__dirname, '..');
const PAGE_SOURCES = join(__dirname, 'page');
/** Built pages, one directory per source hash: readable by nginx's unprivileged workers. */
export const PAGE_CACHE = join(__dirname, '.build');
/** The files nginx serves from a built page's directory (config.json comes from the topology, in the config). */
export const PAGE_FILES = ['index.html', 'app.js'] as const;

/** The page's sources and the bundled SDK's version, hashed: an unchanged page is not built again. */
function pageSourceHash(): string {
  const hash = createHash('sha256');
  for (const name of readdirSync(PAGE_SOURCES).sort())
    hash
      .update(name)
      .update('\0')
      .update(readFileSync(join(PAGE_SOURCES, name)));
  for (const pkg of ['centrifuge', 'oauth4webapi', 'esbuild'])
    hash.update(JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')).version);
  return hash.digest('hex').slice(0, 16);
}

/**
 * The notification page, built: index.html and app.js (the page and the centrifuge SDK bundled by
 * esbuild, no CDN). Returns its directory; a page already built for these sources is reused.
 * Concurrent builders each write a temporary copy; the first rename wins.
 */
export function builtPage(cache = PAGE_CACHE): string {
  const dir = join(cache, pageSourceHash());
  if (existsSync(join(dir, 'app.js'))) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  buildSync({
    entryPoints: [join(PAGE_SOURCES, 'main.ts')],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2020',
    minify: true,
    sourcemap: false,
    outfile: join(tmp, 'app.js'),
    logLevel: 'error',
  });
  copyFileSync(join(PAGE_SOURCES, 'index.html'), join(tmp, 'index.html'));
  for (const path of [cache, tmp]) chmodSync(path, 0o755);
  for (const file of PAGE_FILES) chmodSync(join(tmp, file), 0o644);
  try {
    renameSync(tmp, dir);
  } catch (error) {
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(join(dir, 'app.js'))) throw error;
  }
  return dir;
}

/** Copies the built page into `dir`: a deployment's (stacks/paths.ts: pageDir), which the proxy containers mount. */
export function installPage(dir: string): void {
  const built = builtPage();
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (const file of PAGE_FILES) {
    copyFileSync(join(built, file), join(dir, file));
    chmodSync(join(dir, file), 0o644);
  }
}
