import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { PUBLISH_API_PATH } from '../shared/protocol';

/** What the publish API answered: its status, and the stored offset on 202. */
export interface ApiAnswer {
  readonly status: number;
  readonly offset?: number;
}

/** One publication as the API takes it (server/publish-api.ts). */
export interface ApiPublication {
  readonly topic: string;
  readonly data: unknown;
  readonly id: string;
  readonly ts: number;
}

/** Requests in flight at once per load process: a backend's connection pool, not a socket per publication. */
const MAX_SOCKETS = 16;

/**
 * Publications as a backend sends them: POST /api/publish with the bearer key, on kept-alive
 * connections to the target's origin. Node's own client rather than fetch: the CA and the socket
 * pool are given the way the WebSockets get them, with no extra dependency.
 */
export class ApiPublisher {
  private readonly endpoint: URL;
  private readonly key: string;
  private readonly agent: HttpAgent;
  private readonly send: typeof httpRequest;

  /** `url`: the WebSocket URL the run targets; the API is at its origin (ws → http, wss → https). */
  constructor(url: string, keyFile: string, tls: { ca?: Buffer; insecure: boolean }) {
    const ws = new URL(url);
    const secure = ws.protocol === 'wss:';
    this.endpoint = new URL(PUBLISH_API_PATH, `${secure ? 'https' : 'http'}://${ws.host}`);
    this.key = readFileSync(keyFile, 'utf8').trim();
    this.agent = secure
      ? new HttpsAgent({ keepAlive: true, maxSockets: MAX_SOCKETS, ca: tls.ca, rejectUnauthorized: !tls.insecure })
      : new HttpAgent({ keepAlive: true, maxSockets: MAX_SOCKETS });
    this.send = secure ? httpsRequest : httpRequest;
  }

  /** Resolves with the answer (any status); rejects only when no answer came (a network error). */
  publish(p: ApiPublication): Promise<ApiAnswer> {
    const body = JSON.stringify(p);
    return new Promise((resolve, reject) => {
      const req = this.send(this.endpoint, {
        method: 'POST',
        agent: this.agent,
        headers: { authorization: `Bearer ${this.key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      });
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => resolve({ status: res.statusCode ?? 0, offset: offsetIn(Buffer.concat(chunks).toString()) }));
      });
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function offsetIn(text: string): number | undefined {
  try {
    const offset = (JSON.parse(text) as { offset?: unknown }).offset;
    return typeof offset === 'number' ? offset : undefined;
  } catch {
    return undefined;
  }
}
