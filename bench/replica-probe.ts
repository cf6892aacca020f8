import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type WebSocket from 'ws';
import type { ServerConfig } from '../app/src/topology';
import { startBroker } from '../local/broker';

/** The probe replica's answer (server-probe.ts): RSS, heap and CPU so far; `cpu` answers with cpuUs only. */
export type Sample = { rss: number; heap: number; cpuUs: number; connections: number };

/**
 * One replica alone in a process (server-probe.ts), delivering through the broker at `natsUrl`,
 * for the benches that read a replica's own memory and CPU (compression, protocols).
 * PROBE_PROFILE=dir: a CPU profile of each probe, written when it is told to exit.
 */
export function startProbe(server: Partial<ServerConfig>, natsUrl: string) {
  const child = fork(join(__dirname, 'server-probe.ts'), [], {
    execArgv: [
      '--import',
      'tsx',
      '--expose-gc',
      ...(process.env.PROBE_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.PROBE_PROFILE}`] : []),
    ],
    env: { ...process.env, SERVER: JSON.stringify(server), NATS_URL: natsUrl },
  });
  const ask = (what: 'measure' | 'cpu' = 'measure') =>
    new Promise<Sample>((r) => {
      child.once('message', (m) => r(m as Sample));
      child.send(what);
    });
  const port = new Promise<number>((r, j) => {
    child.once('message', (m: { port: number }) => r(m.port));
    child.once('exit', (code) => j(new Error(`the probe exited (${code})`)));
  });
  /** A CPU profile of what the replica does while `during` runs: the profile file's path. */
  const profiled = async (during: () => Promise<void>): Promise<string> => {
    const answer = (m: string) =>
      new Promise<{ file?: string }>((r) => {
        child.once('message', (reply) => r(reply as { file?: string }));
        child.send(m);
      });
    await answer('profile-start');
    await during();
    return (await answer('profile-stop')).file!;
  };
  const exit = async () => {
    child.send('exit');
    await new Promise((r) => child.once('exit', r));
  };
  return { child, ask, port, profiled, exit };
}

/** Waits for `check`, polling every 20 ms. */
export async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export type Probe = ReturnType<typeof startProbe>;

/**
 * One bench row on a fresh nats-server (in a temporary directory) and probe replica: `row` gets
 * the probe and a list to put its subscribers in, whose sockets are terminated, like the rest,
 * however the row ends.
 */
export async function probeRow<S extends { ws: WebSocket }, T>(
  server: Partial<ServerConfig>,
  row: (probe: Probe, subscribers: S[]) => Promise<T>,
): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-probe-'));
  const broker = await startBroker(dir);
  const probe = startProbe(server, broker.url);
  const subscribers: S[] = [];
  try {
    return await row(probe, subscribers);
  } finally {
    for (const s of subscribers) s.ws.terminate();
    await probe.exit();
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
