import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, start, startComponent, stop, stopComponent, waitForPort, type Owned } from './processes';
import { brokerSpec } from '../components/broker';
import { BROKER_USERS, type BrokerPasswords } from '../components/broker-auth';
import { ensureBrokerCredentials } from '../certs/secrets';

/** Generated passwords in secret files of the run, and the users' file nats-server includes. */
function writeCredentials(dir: string, broker: { subjectPrefix: string; stream: string }) {
  const files = ensureBrokerCredentials(dir, broker, { replicaMode: 0o600 });
  const users = {
    replica: { user: BROKER_USERS.replica, passwordFile: files.replica },
    backend: { user: BROKER_USERS.backend, passwordFile: files.backend },
  };
  return { authFile: files.config, users };
}

/** nats-server with JetStream (Debian's nats-server) on a free loopback port, its store in a directory of the run. */
export interface LocalBroker {
  /** nats://127.0.0.1:PORT */
  readonly url: string;
  /** The running server (a new one after restart()). */
  process(): Owned;
  /** Stops nats-server (SIGTERM), waits `downMs`, starts it again on the same port and store. */
  restart(downMs?: number): Promise<void>;
  /** Stops it for good (SIGTERM, then SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
  /** With credentials: each user's name and password file (components/broker-auth.ts). */
  readonly credentials?: Record<keyof BrokerPasswords, { user: string; passwordFile: string }>;
}

/** How long after an unexpected exit the broker is started again. */
const RESTART_DELAY_MS = 1_000;

/**
 * Starts the broker with its store in `<dir>/nats` and its log in `<dir>/logs`. `startProcess`
 * is how the caller owns its children (the local runner marks and records them; tests start them
 * plainly).
 */
export async function startBroker(
  dir: string,
  startProcess: (...args: Parameters<typeof start>) => Owned = start,
  options: { credentials?: { subjectPrefix: string; stream: string } } = {},
): Promise<LocalBroker> {
  if (spawnSync('nats-server', ['--version']).error)
    throw new Error(
      'the broker needs nats-server. On Debian/Ubuntu: sudo apt-get install -y nats-server (or turn the broker off: broker.enabled false, npm run local -- --no-broker)',
    );
  const port = await freePort();
  const store = join(dir, 'nats');
  mkdirSync(store, { recursive: true });
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const credentials = options.credentials ? writeCredentials(dir, options.credentials) : undefined;
  // Loopback only.
  const spec = brokerSpec({ store, port, address: '127.0.0.1', authFile: credentials?.authFile });
  const launch = async () => {
    const p = startComponent('nats-server', spec, { logFile: join(dir, 'logs', 'nats-server.log'), startProcess });
    await waitForPort(port, p);
    return p;
  };
  let current = await launch();
  // A nats-server that dies on its own (a crash, the OOM killer, a stray kill) is started again
  // on the same port and store, as a container's restart policy would; restart() and stop() are
  // the only exits it expects.
  let expected = false;
  const supervise = (p: Owned) => {
    void p.exited.then(async (code) => {
      if (expected || p !== current) return;
      console.error(`nats-server exited unexpectedly (${code ?? p.child.signalCode}); starting it again in ${RESTART_DELAY_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, RESTART_DELAY_MS));
      if (expected || p !== current) return;
      current = await launch().catch((error: Error) => {
        console.error(`nats-server did not start again: ${error.message}`);
        return p;
      });
      if (current !== p) supervise(current);
    });
  };
  supervise(current);
  return {
    url: `nats://127.0.0.1:${port}`,
    credentials: credentials?.users,
    process: () => current,
    async restart(downMs = 1_000) {
      expected = true;
      await stopComponent(current, spec);
      await new Promise((r) => setTimeout(r, downMs));
      current = await launch();
      expected = false;
      supervise(current);
    },
    async stop(graceMs) {
      expected = true;
      await stop(current, spec.stop?.signal, graceMs ?? spec.stop?.graceMs);
    },
  };
}
