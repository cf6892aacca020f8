import WebSocket, { type ClientOptions } from 'ws';
import { serverSchema, type AuthConfig, type ServerConfig } from '../../app/src/topology';
import type { ServerMetrics } from '../../app/src/server/metrics';
import { createReplica } from '../../app/src/server/replica';
import type { NotificationServer } from '../../app/src/server/server';
import type { ServerMessage } from '../../app/src/shared/protocol';

export interface RunningServer {
  server: NotificationServer;
  metrics: ServerMetrics;
  settings: ServerConfig & { replicaId: string };
  url: string;
  httpUrl: string;
  stop(): Promise<void>;
}

/** The control key the test servers check (a deployment's is tls.controlKey's file). */
export const TEST_CONTROL_KEY = 'test-control-key-0123456789abcdef';

/**
 * A real server on an ephemeral loopback port, with the topology defaults plus overrides, except
 * that clients may publish over the WebSocket (server.clientPublish; most tests publish that way).
 */
export async function startServer(
  overrides: Partial<ServerConfig> = {},
  replicaId = 'test-0',
  options: { auth?: AuthConfig; apiKey?: string } = {},
): Promise<RunningServer> {
  const settings = { ...serverSchema.parse({ clientPublish: true, ...overrides }), replicaId };
  const { server, metrics } = createReplica(settings, {
    logLevel: 'silent',
    controlKey: TEST_CONTROL_KEY,
    auth: options.auth,
    apiKey: options.apiKey,
  });
  const address = await server.listen(0, '127.0.0.1');
  return {
    server,
    metrics,
    settings,
    url: `ws://127.0.0.1:${address.port}${settings.path}`,
    httpUrl: `http://127.0.0.1:${address.port}`,
    stop: () => server.stop(),
  };
}

/** A real `ws` client that records what it receives and can wait for a message type. */
export class TestClient {
  readonly messages: ServerMessage[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  /** The server's Sec-WebSocket-Extensions answer, with its negotiated parameters. */
  extensionsHeader = '';
  private waiters: { type: string; resolve: (m: ServerMessage) => void }[] = [];
  private consumed = new Set<ServerMessage>();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const message = JSON.parse(data.toString()) as ServerMessage;
      this.messages.push(message);
      const i = this.waiters.findIndex((w) => w.type === message.type);
      if (i >= 0) {
        this.consumed.add(message);
        this.waiters.splice(i, 1)[0].resolve(message);
      }
    });
    ws.on('upgrade', (res) => (this.extensionsHeader = String(res.headers['sec-websocket-extensions'] ?? '')));
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  /** Opens a connection; rejects with the handshake error (e.g. "Unexpected server response: 503"). */
  static open(url: string, options: ClientOptions = {}): Promise<TestClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
    const client = new TestClient(ws);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
    });
  }

  send(message: unknown): void {
    this.ws.send(JSON.stringify(message));
  }

  /** The next not yet awaited message of this type, waiting up to timeoutMs. */
  next<T extends ServerMessage['type']>(type: T, timeoutMs = 3000): Promise<Extract<ServerMessage, { type: T }>> {
    const ready = this.messages.find((m) => m.type === type && !this.consumed.has(m));
    if (ready) {
      this.consumed.add(ready);
      return Promise.resolve(ready as Extract<ServerMessage, { type: T }>);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${type} message within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        type,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m as Extract<ServerMessage, { type: T }>);
        },
      });
    });
  }

  close(): void {
    this.ws.close();
  }
}

/** The current value of a counter or gauge (optionally for one label set). */
export async function metricValue(
  metric: { get(): Promise<{ values: { value: number; labels: Partial<Record<string, string | number>> }[] }> },
  labels: Record<string, string> = {},
): Promise<number> {
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((sum, v) => sum + v.value, 0);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until the condition holds or the time is up. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(20);
  }
  throw new Error(`${what} not reached within ${timeoutMs} ms`);
}

/** Retries an assertion until it holds; on timeout, its last failure is the test's. */
export async function retrying<T>(check: () => Promise<T>, timeoutMs: number, intervalMs = 500): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > end) throw error;
      await sleep(intervalMs);
    }
  }
}
