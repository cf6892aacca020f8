import { JetStreamBroker } from '../app/src/server/broker';
import { createLogger } from '../app/src/server/logger';
import { createReplica } from '../app/src/server/replica';
import { brokerSchema, serverSchema } from '../app/src/topology';

/**
 * A server replica for the compression benchmark, in its own process so its memory and CPU can be
 * read alone. SERVER: the server settings of the row (JSON); NATS_URL: the broker it delivers
 * through (deltas need its offsets). Answers `measure` with its RSS, heap and CPU so far.
 */
const overrides = JSON.parse(process.env.SERVER ?? '{}') as Record<string, unknown>;
const settings = { ...serverSchema.parse(overrides), replicaId: 'bench-probe' };
const gc = (globalThis as { gc?: () => void }).gc!;

async function main(): Promise<void> {
  const url = process.env.NATS_URL;
  const broker = url
    ? await JetStreamBroker.connect(
        brokerSchema.parse({ enabled: true, urls: [url], storage: 'memory' }),
        settings.replicaId,
        createLogger(settings.replicaId, 'silent'),
      )
    : undefined;
  const { server } = createReplica(settings, { logLevel: 'silent', broker });
  const address = await server.listen(0, '127.0.0.1');
  process.send!({ port: address.port });
  process.on('message', (m: string) => {
    // An exit asked for (not a signal) lets --cpu-prof (PROBE_PROFILE) write its profile.
    if (m === 'exit') process.exit(0);
    if (m !== 'measure') return;
    gc();
    setTimeout(() => {
      gc();
      const u = process.memoryUsage();
      const cpu = process.cpuUsage();
      process.send!({ rss: u.rss, heap: u.heapUsed + u.external, cpuUs: cpu.user + cpu.system, connections: server.connectionCount });
    }, 300);
  });
}

void main();
