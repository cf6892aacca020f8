import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';

const ROOT = join(__dirname, '..');
const APP = join(ROOT, 'app');
/** Where compiled copies of the app are kept, one directory per source hash. */
export const BUILD_CACHE = join(APP, '.build');
/** How long a build may hold the lock before another process takes over (a build takes seconds). */
const STALE_LOCK_MS = 120_000;

/** The sources the images compile (app/tsconfig.build.json), the configs and the compiler's version, hashed. */
export function appSourceHash(): string {
  const hash = createHash('sha256');
  const files = listFiles(join(APP, 'src')).filter((f) => !f.endsWith('.test.ts'));
  for (const file of [...files, join(APP, 'tsconfig.json'), join(APP, 'tsconfig.build.json')].sort()) {
    hash.update(relative(APP, file)).update('\0').update(readFileSync(file)).update('\0');
  }
  hash.update(JSON.parse(readFileSync(join(ROOT, 'node_modules', 'typescript', 'package.json'), 'utf8')).version);
  return hash.digest('hex').slice(0, 16);
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listFiles(join(dir, e.name)) : [join(dir, e.name)]));
}

/**
 * The app compiled to JavaScript as the images run it (`dist/` under the returned directory), so
 * a local replica does not compile TypeScript at run time (tsx) and starts as small as a
 * container's. Built with tsc on first use, without type checking (`npm test` type-checks), and
 * kept by source hash: an unchanged tree is reused. Parallel callers (test files start local runs
 * at once) build it once: one holds a lock directory, the others wait for the result.
 */
export async function builtApp(cache = BUILD_CACHE): Promise<string> {
  const dir = join(cache, appSourceHash());
  if (existsSync(join(dir, 'dist'))) return dir;
  mkdirSync(cache, { recursive: true });
  const lock = `${dir}.lock`;
  for (const end = Date.now() + STALE_LOCK_MS * 2; Date.now() < end; ) {
    if (existsSync(join(dir, 'dist'))) return dir;
    if (takeLock(lock)) {
      try {
        if (!existsSync(join(dir, 'dist'))) await compile(dir);
        return dir;
      } finally {
        rmSync(lock, { recursive: true, force: true });
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the compiled app did not appear in ${dir}; remove ${lock} if no build is running`);
}

/** Takes the lock directory, or a stale one left by a build that died. */
function takeLock(lock: string): boolean {
  try {
    mkdirSync(lock);
    return true;
  } catch {
    const age = Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
    if (age > STALE_LOCK_MS) rmSync(lock, { recursive: true, force: true });
    return false;
  }
}

async function compile(dir: string): Promise<void> {
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  await promisify(execFile)(process.execPath, [tsc, '-p', join(APP, 'tsconfig.build.json'), '--outDir', join(tmp, 'dist'), '--noCheck'], {
    cwd: APP,
  }).catch((error: Error & { stdout?: string }) => {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(`compiling the app failed: ${error.stdout || error.message}`);
  });
  renameSync(tmp, dir);
  prune(dir);
}

/** Builds of other sources, untouched for a day, go (a run still using one has long loaded it). */
function prune(keep: string): void {
  const cache = dirname(keep);
  for (const name of readdirSync(cache)) {
    const path = join(cache, name);
    const old = Date.now() - (statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? Date.now()) > 86_400_000;
    if (path !== keep && old) rmSync(path, { recursive: true, force: true });
  }
}
