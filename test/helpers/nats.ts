import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker } from '../../local/broker';
import { stop } from '../../local/processes';
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

/** A real nats-server with JetStream, started as the local runner starts it, in a temporary folder. */
export async function startNats(): Promise<RunningNats> {
  const dir = mkdtempSync(join(tmpdir(), 'ws-nats-test-'));
  const broker = await startBroker(dir);
  return {
    url: broker.url,
    restart: (downMs) => broker.restart(downMs),
    async stop() {
      await stop(broker.process(), 'SIGTERM', 5_000);
      rmSync(dir, { recursive: true, force: true });
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
