import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { createServer, connect } from 'node:net';
import type { ComponentSpec } from '../components/spec';

/** A child process we own: killed with us, never left behind. */
export interface Owned {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  /** Everything it printed, for error messages. */
  output(): string;
}

const owned = new Set<ChildProcess>();

/** Still running: neither exited nor killed by a signal. */
export function running(p: Pick<Owned, 'child'>): boolean {
  return p.child.exitCode === null && p.child.signalCode === null;
}
let cleanupInstalled = false;

function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', () => {
    for (const child of owned) if (running({ child })) child.kill('SIGKILL');
  });
}

export function start(name: string, command: string, args: string[], options: SpawnOptions & { logFile?: string } = {}): Owned {
  installCleanup();
  const { logFile, ...spawnOptions } = options;
  // Own process group: a Ctrl-C in the terminal reaches the runner, which stops children in order.
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...spawnOptions });
  owned.add(child);
  const log = logFile ? createWriteStream(logFile, { flags: 'a' }) : undefined;
  let text = '';
  const keep = (d: Buffer) => {
    log?.write(d);
    text += d.toString();
    if (text.length > 200_000) text = text.slice(-100_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) => {
    child.on('error', (error) => {
      text += `\n${error.message}`;
      resolve(-1);
    });
    child.on('exit', (code, signal) => {
      owned.delete(child);
      resolve(code ?? (signal ? 128 : null));
    });
  });
  // Not at 'exit': output still in the pipes arrives after it, and would be written after the end.
  child.on('close', () => log?.end());
  return { name, child, exited, output: () => text };
}

/**
 * A component spec as a local process: its files written where it reads them, then its argv
 * (`node` is the Node running us) after `prefix` (nsenter, for a namespace), its environment
 * over ours. `startProcess` is how the caller owns its children.
 */
export function startComponent(
  name: string,
  spec: ComponentSpec,
  options: { logFile?: string; cwd?: string; prefix?: readonly string[]; startProcess?: typeof start } = {},
): Owned {
  for (const file of spec.files ?? []) {
    mkdirSync(dirname(file.path), { recursive: true });
    writeFileSync(file.path, file.content, { mode: file.mode ?? 0o444 });
  }
  const argv = [...(options.prefix ?? []), ...spec.argv.map((word, i) => (i === 0 && word === 'node' ? process.execPath : word))];
  const [command, ...args] = argv;
  const env = spec.env ? { ...process.env, ...spec.env } : undefined;
  return (options.startProcess ?? start)(name, command, args, { logFile: options.logFile, cwd: options.cwd, ...(env ? { env } : {}) });
}

/** Stops a component's process as its spec says: its signal, then SIGKILL after its grace (SIGTERM, 10 s by default). */
export function stopComponent(p: Owned, spec: ComponentSpec): Promise<void> {
  return stop(p, spec.stop?.signal ?? 'SIGTERM', spec.stop?.graceMs ?? 10_000);
}

/**
 * Sends a signal and waits for the exit; SIGKILL after the grace period. With `group`, to the
 * process's whole group (each child leads its own): a shell loop's current `sleep` or `curl`
 * goes with it instead of outliving it.
 */
export async function stop(
  p: Owned,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 10_000,
  options: { group?: boolean } = {},
): Promise<void> {
  if (!running(p)) return;
  const send = (s: NodeJS.Signals) => {
    if (!options.group || !p.child.pid) return void p.child.kill(s);
    try {
      process.kill(-p.child.pid, s);
    } catch {
      // the group is gone already
    }
  };
  send(signal);
  const timer = setTimeout(() => send('SIGKILL'), graceMs);
  await p.exited;
  clearTimeout(timer);
}

/**
 * Ports this process has handed out: the OS may give a just-released port again, and two of our
 * processes (nginx's TLS and plain ports, two replicas) must not be told the same one.
 */
const handedOut = new Set<number>();

/** A free TCP port on loopback (the OS picks; we release it at once), never one handed out before. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await anyFreePort();
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

function anyFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on the port (of loopback, or `host`), or rejects naming the process. */
export async function waitForPort(port: number, p: Owned, timeoutMs = 20_000, host = '127.0.0.1'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (p.child.exitCode !== null) throw new Error(`${p.name} exited (${p.child.exitCode}) before listening:\n${p.output().trim()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, host, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${p.name} did not listen on ${port} within ${timeoutMs} ms:\n${p.output().trim()}`);
}
