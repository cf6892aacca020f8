import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startBroker } from '../../local/broker';
import { natsServerArgv } from '../../components/broker';
import { freePort, start, stop, waitForPort, type Owned } from '../../local/processes';
import { JetStreamBroker } from '../../app/src/server/broker';
import { createLogger } from '../../app/src/server/logger';
import { createReplica } from '../../app/src/server/replica';
import { brokerSchema, serverSchema, type AuthConfig, type BrokerConfig, type ServerConfig } from '../../app/src/topology';
import { scratchDir } from './scratch';

export interface RunningNats {
  url: string;
  /** With credentials: each user's name and password. */
  credentials?: Record<'replica' | 'backend', { user: string; pass: string }>;
  /** Stops the server and starts it again on the same port and store (file streams survive). */
  restart(downMs?: number): Promise<void>;
  /** Sends the running server a signal (SIGSTOP: a broker that stalls without disconnecting). */
  signal(signal: NodeJS.Signals): void;
  /** The running server's pid (another after a restart). */
  pid(): number | undefined;
  stop(): Promise<void>;
}

/**
 * A real nats-server with JetStream, started as the local runner starts it, in a temporary folder;
 * with `credentials`, closed to strangers as the stream of `WS_TEST` needs (components/broker-auth.ts).
 */
export async function startNats(options: { credentials?: boolean } = {}): Promise<RunningNats> {
  const dir = scratchDir('ws-nats-test-');
  const broker = await startBroker(
    dir,
    undefined,
    options.credentials ? { credentials: { subjectPrefix: 'notify', stream: 'WS_TEST' } } : {},
  );
  const read = (c: { user: string; passwordFile: string }) => ({ user: c.user, pass: readFileSync(c.passwordFile, 'utf8').trim() });
  return {
    url: broker.url,
    credentials: broker.credentials && { replica: read(broker.credentials.replica), backend: read(broker.credentials.backend) },
    restart: (downMs) => broker.restart(downMs),
    signal: (signal) => broker.process().child.kill(signal),
    pid: () => broker.process().child.pid,
    async stop() {
      broker.process().child.kill('SIGCONT');
      await broker.stop(5_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A replica connected to the broker on `nats`, listening on an ephemeral loopback port; clients may publish (as startServer's). */
export async function brokerReplica(
  nats: RunningNats,
  id: string,
  broker: Partial<BrokerConfig> = {},
  options: { apiKey?: string; auth?: AuthConfig; server?: Partial<ServerConfig> } = {},
) {
  const config = brokerSchema.parse({ stream: 'WS_TEST', storage: 'memory', ...broker, enabled: true, urls: [nats.url] });
  const client = await JetStreamBroker.connect(config, id, createLogger(id, 'silent'), nats.credentials?.replica);
  const { server, metrics } = createReplica(
    { ...serverSchema.parse({ clientPublish: true, ...options.server }), replicaId: id },
    { logLevel: 'silent', broker: client, apiKey: options.apiKey, auth: options.auth },
  );
  const { port } = await server.listen(0, '127.0.0.1');
  return { server, metrics, port, url: `ws://127.0.0.1:${port}/ws-notifications` };
}

export interface NatsCluster {
  /** nats://127.0.0.1:PORT of each server, running or not. */
  readonly urls: string[];
  /** Starts server i (again, on its port and store). */
  start(i: number): Promise<void>;
  /** Stops server i (SIGKILL: as a lost node, without leaving the cluster politely). */
  kill(i: number): Promise<void>;
  /** Stops server i as Swarm stops a drained node's task (SIGTERM: nats-server leaves the cluster, then exits). */
  shutdown(i: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A JetStream cluster of real nats-servers on loopback, routed to each other, none started yet:
 * JetStream needs a majority of them for its leader, so the caller decides when it has one.
 */
export async function natsCluster(size: number): Promise<NatsCluster> {
  const dir = scratchDir('ws-nats-cluster-');
  const ports = await Promise.all(Array.from({ length: size * 2 }, () => freePort()));
  const client = ports.slice(0, size);
  const route = ports.slice(size);
  const running = new Map<number, Owned>();
  const argv = (i: number) =>
    natsServerArgv({
      store: join(dir, `n${i}`),
      port: client[i],
      address: '127.0.0.1',
      serverName: `n${i}`,
      cluster: {
        name: 'ws-test',
        listen: `nats://127.0.0.1:${route[i]}`,
        routes: route
          .filter((_, j) => j !== i)
          .map((p) => `nats://127.0.0.1:${p}`)
          .join(','),
      },
    });
  return {
    urls: client.map((p) => `nats://127.0.0.1:${p}`),
    async start(i) {
      const [command, ...args] = argv(i);
      const p = start(`nats-${i}`, command, args, { logFile: join(dir, `n${i}.log`) });
      running.set(i, p);
      await waitForPort(client[i], p);
    },
    async kill(i) {
      const p = running.get(i);
      running.delete(i);
      if (p) await stop(p, 'SIGKILL', 5_000);
    },
    async shutdown(i) {
      const p = running.get(i);
      running.delete(i);
      if (p) await stop(p, 'SIGTERM', 10_000);
    },
    async stop() {
      await Promise.all([...running.values()].map((p) => stop(p, 'SIGKILL', 5_000)));
      running.clear();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
