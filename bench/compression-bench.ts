import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { EXIT, runEntryPoint } from '../app/src/shared/exit';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import WebSocket from 'ws';
import { ROOT } from '../local/run';

/**
 * `npm run bench:compression`: what permessage-deflate costs the server per connection, for the
 * project's settings against ws's defaults and no compression, after every connection has
 * exchanged one 2 KiB JSON message each way (zlib streams exist only once used). Writes
 * docs/benchmarks/compression.md.
 */
const N = Number(process.env.CONNECTIONS ?? 1000);
type Sample = { rss: number; heap: number; connections: number };

function startProbe(variant: string) {
  const child = fork(join(__dirname, 'server-probe.ts'), [], {
    execArgv: ['--import', 'tsx', '--expose-gc'],
    env: { ...process.env, VARIANT: variant },
  });
  const ask = () =>
    new Promise<Sample>((r) => {
      child.once('message', (m) => r(m as Sample));
      child.send('measure');
    });
  const port = new Promise<number>((r) => child.once('message', (m: { port: number }) => r(m.port)));
  return { child, ask, port };
}

async function measure(variant: string, clientDeflate: boolean) {
  const probe = startProbe(variant);
  const port = await probe.port;
  const before = await probe.ask();
  const payload = JSON.stringify({
    items: Array.from({ length: 40 }, (_, i) => ({ id: i, name: `item-${i}`, tags: ['alpha', 'beta', 'gamma'] })),
  }).slice(0, 2048);
  const sockets: WebSocket[] = [];
  let wire = 0;
  for (let i = 0; i < N; i += 100) {
    await Promise.all(
      Array.from(
        { length: Math.min(100, N - i) },
        () =>
          new Promise<void>((res, rej) => {
            const ws = new WebSocket(`ws://127.0.0.1:${port}/ws-notifications`, { perMessageDeflate: clientDeflate });
            sockets.push(ws);
            let seen = 0;
            ws.on('message', () => {
              if (++seen === 2) res(); // hello, then the echo
            });
            ws.on('open', () => {
              ws.send(JSON.stringify({ type: 'echo', id: 1, ts: 1, payload }));
            });
            ws.on('error', rej);
          }),
      ),
    );
  }
  // Bytes on the wire for one echo, from the socket counters of one connection.
  const s = (sockets[0] as unknown as { _socket: { bytesRead: number } })._socket;
  wire = s.bytesRead;
  const after = await probe.ask();
  const negotiated = sockets[0].extensions || 'none';
  sockets.forEach((ws) => ws.terminate());
  probe.child.kill();
  return {
    variant,
    negotiated,
    rssKB: Math.round(((after.rss - before.rss) / N / 1024) * 10) / 10,
    heapKB: Math.round(((after.heap - before.heap) / N / 1024) * 10) / 10,
    bytesInForHelloAndEcho: wire,
    payloadBytes: payload.length,
  };
}

async function main() {
  const rows = [];
  for (const [variant, clientDeflate] of [
    ['off', false],
    ['ours', true],
    ['ws-default', true],
  ] as const) {
    const r = await measure(variant, clientDeflate);
    rows.push(r);
    console.log(JSON.stringify(r));
  }
  const md = `# permessage-deflate: server memory per connection

Produced by \`npm run bench:compression\` on ${new Date().toISOString().slice(0, 10)} (${cpus().length} cores, Node ${process.version}).
A server replica runs alone in a process; ${N} connections each exchange one ${rows[0].payloadBytes}-byte JSON echo (zlib
streams are created on first use), then the server's RSS and heap+external growth is divided by
the connection count (after a forced GC). Wire bytes: what one client read for its hello and echo.

| server setting | negotiated | RSS KB/conn | heap+external KB/conn | bytes read by a client (hello + echo) |
| --- | --- | ---: | ---: | ---: |
${rows.map((r) => `| ${r.variant} | ${r.negotiated} | ${r.rssKB} | ${r.heapKB} | ${r.bytesInForHelloAndEcho} |`).join('\n')}

- **off**: no extension.
- **ours** (\`app/src/server/compression.ts\`): no context takeover either way, 2^10 windows, memLevel 4, level 2 (the seed's
  level), messages under 256 bytes sent plain.
- **ws-default**: what \`ws\` negotiates unless told otherwise (context takeover, 2^15 windows, memLevel 8).
`;
  const out = resolve(ROOT, process.env.OUT ?? 'docs/benchmarks/compression.md');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, md);
  console.log(`wrote ${out}`);
}

runEntryPoint(async () => {
  await main();
  return EXIT.ok;
});
