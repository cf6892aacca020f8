import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JetStreamBroker } from '../app/src/server/broker';
import { createLogger } from '../app/src/server/logger';
import { createReplica } from '../app/src/server/replica';
import { brokerSchema, serverSchema } from '../app/src/topology';

/**
 * A server replica for the compression benchmark, in its own process so its memory and CPU can be
 * read alone. SERVER: the server settings of the row (JSON); NATS_URL: the broker it delivers
 * through (deltas need its offsets). Answers `measure` with its RSS, heap and CPU so far (after a
 * forced GC), and `cpu` with its CPU alone: a GC with 10,000 connections held takes a few hundred
 * ms, which must not fall inside a CPU window. `profile-start` and `profile-stop` take a CPU profile of
 * what happens between them (answered with the file it was written to).
 */
const overrides = JSON.parse(process.env.SERVER ?? '{}') as Record<string, unknown>;
// Clients may publish over the WebSocket here, as in the local runner without --auth.
const settings = { ...serverSchema.parse({ clientPublish: true, ...overrides }), replicaId: 'bench-probe' };
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
    if (m === 'profile-start' || m === 'profile-stop') return void profile(m);
    if (m === 'cpu') {
      const cpu = process.cpuUsage();
      process.send!({ cpuUs: cpu.user + cpu.system });
      return;
    }
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

const session = new Session();

/** The V8 profiler over one window, through the inspector: the window alone, not the start-up or the connects. */
async function profile(m: 'profile-start' | 'profile-stop'): Promise<void> {
  if (m === 'profile-start') {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    await session.post('Profiler.start');
    process.send!({ started: true });
    return;
  }
  const { profile } = await session.post('Profiler.stop');
  session.disconnect();
  const file = join(tmpdir(), `probe-${process.pid}-${Date.now()}.cpuprofile`);
  writeFileSync(file, JSON.stringify(profile));
  process.send!({ file });
}

void main();
