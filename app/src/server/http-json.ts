import type { IncomingMessage } from 'node:http';

/** How the server answers a plain HTTP request (see NotificationServer.onRequest). */
export type Reply = (status: number, body: string, headers?: Record<string, string>) => void;

/** A JSON answer, one line. */
export function replyJson(reply: Reply, status: number, body: unknown, headers: Record<string, string> = {}): void {
  reply(status, `${JSON.stringify(body)}\n`, { 'Content-Type': 'application/json', ...headers });
}

/**
 * Reads a request body of at most `limitBytes` and parses it as JSON. The bytes are decoded once,
 * at the end, so a character split between two chunks stays whole.
 */
export async function readJsonBody(req: IncomingMessage, limitBytes: number): Promise<{ ok: true; value: unknown } | { ok: false; problem: 'too_large' | 'not_json' }> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (bytes > limitBytes) return { ok: false, problem: 'too_large' };
    chunks.push(chunk);
  }
  try {
    return { ok: true, value: JSON.parse(Buffer.concat(chunks).toString('utf8')) };
  } catch {
    return { ok: false, problem: 'not_json' };
  }
}
