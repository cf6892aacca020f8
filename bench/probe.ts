import WebSocket from 'ws';
import { loadProfileSchema } from '../app/src/shared/profile';
import { Stats } from '../app/src/client/stats';
import { DeliveryLedger } from '../app/src/client/delivery';
import { HandshakeGate } from '../app/src/client/handshake-gate';
import { VirtualUser, type RunContext } from '../app/src/client/virtual-user';
import { sharedSecureContext, targetOf } from '../app/src/client/connector';
import { payloadSource } from '../app/src/client/payloads';

/**
 * One benchmark probe, run in its own process (so its memory is its connections' memory):
 * opens N connections with at most `inFlight` handshakes in flight (the bench's), then reports the opening
 * rate and the memory per open connection. `ours` uses the load client's VirtualUser, `bare` a
 * plain `ws` client: the reference the load client must not be worse than.
 */
interface ProbeRequest {
  kind: 'ours' | 'bare';
  url: string;
  ca?: string;
  n: number;
  inFlight: number;
  compression: boolean;
}

const req: ProbeRequest = JSON.parse(process.env.PROBE!);
const gc = (globalThis as { gc?: () => void }).gc!;
const ca = req.ca ? Buffer.from(req.ca, 'base64') : undefined;

async function main() {
  gc();
  await new Promise((r) => setTimeout(r, 200));
  const before = process.memoryUsage();
  const started = performance.now();
  const keep: { close(): void }[] = [];
  // One Stats for all users, as in the real runner; its hooks tell the probe when a handshake ends.
  const stats = new Stats();
  const pending: ((ok: boolean) => void)[] = [];
  const settle = (ok: boolean) => pending.shift()?.(ok);
  const origOpened = stats.opened.bind(stats);
  stats.opened = () => {
    origOpened();
    settle(true);
  };
  const origError = stats.error.bind(stats);
  stats.error = (kind: string) => {
    origError(kind);
    settle(false);
  };
  const profile = loadProfileSchema.parse({
    compression: req.compression,
    topics: 0,
    publishRate: 0,
    senderFraction: 0,
    reconnect: { enabled: false },
  });
  const context: RunContext = {
    url: req.url,
    profile,
    stats,
    ca,
    target: targetOf(req.url),
    secureContext: sharedSecureContext(ca),
    insecure: false,
    isSender: () => false,
    publishRatePerSender: 0,
    sourceAddressFor: () => undefined,
    running: () => true,
    publishing: () => false,
    ledger: new DeliveryLedger(),
    // The probe paces its own handshakes (at most req.inFlight in flight).
    gate: new HandshakeGate(Number.MAX_SAFE_INTEGER),
    faultOn: () => undefined,
    faultOfKind: () => undefined,
    faultRefusing: () => undefined,
    runId: 'probe',
    payloads: payloadSource(profile.payload),
  };
  let open = 0;
  let failed = 0;
  await new Promise<void>((resolve) => {
    let next = 0;
    const launch = () => {
      if (next >= req.n) return;
      const i = next++;
      const done = (ok: boolean) => {
        ok ? open++ : failed++;
        if (open + failed === req.n) resolve();
        else launch();
      };
      if (req.kind === 'bare') {
        const ws = new WebSocket(req.url, { perMessageDeflate: req.compression, ca });
        ws.once('open', () => done(true));
        ws.once('error', () => done(false));
        keep.push({ close: () => ws.terminate() });
      } else {
        const user = new VirtualUser(i, context);
        pending.push(done);
        user.start();
        keep.push({ close: () => void user.stop() });
      }
    };
    for (let k = 0; k < req.inFlight; k++) launch();
  });
  const seconds = (performance.now() - started) / 1000;
  await new Promise((r) => setTimeout(r, 1000));
  gc();
  await new Promise((r) => setTimeout(r, 200));
  const after = process.memoryUsage();
  process.send!(
    {
      open,
      failed,
      perSecond: Math.round(open / seconds),
      rssPerConnKB: Math.round(((after.rss - before.rss) / Math.max(1, open) / 1024) * 10) / 10,
      heapPerConnKB:
        Math.round(((after.heapUsed + after.external - before.heapUsed - before.external) / Math.max(1, open) / 1024) * 10) / 10,
    },
    () => process.exit(0),
  );
}

void main();
