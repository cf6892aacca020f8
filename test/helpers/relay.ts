import { createServer, connect, type Socket } from 'node:net';

export interface Relay {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * A loopback TCP relay: each connection goes to the next of `targetPorts` in turn, and what a
 * target sends reaches the client `delayMs` later (a slower path, in order). Written here because
 * a test needs one slow link among fast ones, which a proxy's config cannot give per connection.
 */
export async function tcpRelay(targetPorts: number[], delayMs = 0): Promise<Relay> {
  let next = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const target = connect(targetPorts[next++ % targetPorts.length], '127.0.0.1');
    for (const s of [client, target]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => [client, target].forEach((x) => x.destroy()));
    }
    const later = (f: () => void) => (delayMs > 0 ? setTimeout(f, delayMs) : f());
    client.on('data', (chunk) => target.write(chunk));
    client.on('end', () => target.end());
    target.on('data', (chunk) => later(() => client.write(chunk)));
    target.on('end', () => later(() => client.end()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
