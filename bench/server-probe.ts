import { DEFLATE_OPTIONS } from '../app/src/server/compression';
import { createReplica } from '../app/src/server/replica';
import { serverSchema } from '../app/src/topology';

/**
 * A server replica for the compression benchmark, in its own process so its memory can be read
 * alone. VARIANT: off | ours (the project's deflate settings) | ws-default (context takeover,
 * 15-bit windows, memLevel 8: what `ws` does unless told otherwise).
 */
const variant = process.env.VARIANT ?? 'off';
if (variant === 'ws-default') {
  for (const key of Object.keys(DEFLATE_OPTIONS)) delete (DEFLATE_OPTIONS as Record<string, unknown>)[key];
}
const settings = { ...serverSchema.parse({ compression: variant === 'off' ? 'off' : 'offered' }), replicaId: `bench-${variant}` };
const { server } = createReplica(settings, { logLevel: 'silent' });
const gc = (globalThis as { gc?: () => void }).gc!;

void server.listen(0, '127.0.0.1').then((address) => {
  process.send!({ port: address.port });
  process.on('message', (m: string) => {
    if (m !== 'measure') return;
    gc();
    setTimeout(() => {
      gc();
      const u = process.memoryUsage();
      process.send!({ rss: u.rss, heap: u.heapUsed + u.external, connections: server.connectionCount });
    }, 300);
  });
});
