/**
 * The floor for a Node load client: `ws` connections opened at a rate, each sending a 128-byte
 * message every 5 s and closing after its lifetime, measuring nothing. Used by bench/peers.ts.
 * Usage: bare-holder URL CA_FILE CONNECTIONS RATE LIFETIME_SECONDS
 */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import WebSocket from 'ws';

const [url, caFile, connectionsText, rateText, lifetimeText] = process.argv.slice(2);
const connections = Number(connectionsText);
const rate = Number(rateText);
const lifetimeMs = Number(lifetimeText) * 1000;
// One TLS context for all connections, as this project's client has: a floor, not a straw man.
const secureContext = createSecureContext({ ca: readFileSync(caFile) });
const payload = 'x'.repeat(128);
let opened = 0;
let failed = 0;
let closed = 0;

function open(): void {
  const ws = new WebSocket(url, { secureContext, perMessageDeflate: false } as WebSocket.ClientOptions);
  let timer: NodeJS.Timeout | undefined;
  ws.on('open', () => {
    opened++;
    timer = setInterval(() => ws.send(payload), 5_000);
    setTimeout(() => ws.close(1000), lifetimeMs);
  });
  ws.on('error', () => undefined);
  ws.on('close', () => {
    clearInterval(timer);
    if (!timer) failed++;
    if (++closed === connections) {
      console.log(JSON.stringify({ opened, failed }));
      process.exit(0);
    }
  });
}

let started = 0;
const t0 = performance.now();
const pacer = setInterval(() => {
  const due = Math.min(connections, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
  while (started < due) {
    started++;
    open();
  }
  if (started === connections) clearInterval(pacer);
}, 10);
