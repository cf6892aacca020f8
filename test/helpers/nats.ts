import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { freePort, start, stop, waitForPort, type Owned } from '../../local/processes';
import { JetStreamBroker } from '../../app/src/server/broker';
import { createLogger } from '../../app/src/server/logger';
import { createReplica } from '../../app/src/server/replica';
import { brokerSchema, serverSchema, type BrokerConfig } from '../../app/src/topology';

export interface RunningNats {
  url: string;
  /** Stops the server and starts it again on the same port and store (file streams survive). */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** A real nats-server with JetStream on a free loopback port, its store in a temporary folder. */
export async function startNats(): Promise<RunningNats> {
  if (spawnSync('nats-server', ['--version']).error) throw new Error('nats-server is required for the broker tests (apt-get install nats-server)');
  const port = await freePort();
  const store = mkdtempSync(join(tmpdir(), 'ws-nats-test-'));
  const launch = async () => {
    const p = start('nats-server', 'nats-server', ['-js', '-sd', store, '-a', '127.0.0.1', '-p', String(port)]);
    await waitForPort(port, p);
    return p;
  };
  let p: Owned = await launch();
  return {
    url: `nats://127.0.0.1:${port}`,
    async restart(downMs = 500) {
      await stop(p, 'SIGTERM', 5_000);
      await new Promise((r) => setTimeout(r, downMs));
      p = await launch();
    },
    async stop() {
      await stop(p, 'SIGTERM', 5_000);
      rmSync(store, { recursive: true, force: true });
    },
  };
}

/** A replica connected to the broker on `nats`, listening on an ephemeral loopback port. */
export async function brokerReplica(nats: RunningNats, id: string, broker: Partial<BrokerConfig> = {}, options: { apiKey?: string } = {}) {
  const config = brokerSchema.parse({ stream: 'WS_TEST', storage: 'memory', ...broker, enabled: true, urls: [nats.url] });
  const client = await JetStreamBroker.connect(config, id, createLogger(id, 'silent'));
  const { server, metrics } = createReplica({ ...serverSchema.parse({}), replicaId: id }, { logLevel: 'silent', broker: client, apiKey: options.apiKey });
  const { port } = await server.listen(0, '127.0.0.1');
  return { server, metrics, port, url: `ws://127.0.0.1:${port}/ws-notifications` };
}
