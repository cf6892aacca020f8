import type { IncomingMessage } from 'node:http';
import { parseJson } from '../shared/json';

/** How the server answers a plain HTTP request (see NotificationServer.onRequest). */
export type Reply = (status: number, body: string, headers?: Record<string, string>) => void;

/** A JSON answer, one line. */
export function replyJson(reply: Reply, status: number, body: unknown, headers: Record<string, string> = {}): void {
  reply(status, `${JSON.stringify(body)}\n`, { 'Content-Type': 'application/json', ...headers });
}

export type BodyProblem = 'too_large' | 'not_json' | 'too_deep' | 'aborted';

/**
 * Reads a request body of at most `limitBytes` and parses it as JSON (at most MAX_JSON_DEPTH
 * deep); never rejects. A client that goes away mid-body ('aborted') gets no answer: nobody is
 * left to read it. The bytes are decoded once, at the end, so a character split between two
 * chunks stays whole.
 */
export async function readJsonBody(
  req: IncomingMessage,
  limitBytes: number,
): Promise<{ ok: true; value: unknown } | { ok: false; problem: BodyProblem; message: string }> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (bytes > limitBytes) return { ok: false, problem: 'too_large', message: `larger than ${limitBytes} bytes` };
      chunks.push(chunk);
    }
  } catch (error) {
    return { ok: false, problem: 'aborted', message: (error as Error).message };
  }
  return parseJson(Buffer.concat(chunks).toString('utf8'));
}

/**
 * The first answers of a POST-only API (the publish and revoke APIs): 404 while it is off (saying
 * why), 405 for any other method. True when the request may go on.
 */
export function postAccepted(req: IncomingMessage, reply: Reply, api: { path: string; off?: string }): boolean {
  if (api.off !== undefined) replyJson(reply, 404, { error: api.off });
  else if (req.method !== 'POST') replyJson(reply, 405, { error: `${api.path} takes POST` }, { Allow: 'POST' });
  else return true;
  return false;
}
