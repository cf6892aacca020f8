import type { IncomingMessage } from 'node:http';
import { BROKER_ERROR_CODE, BROKER_UNKNOWN_CODE, PUBLISH_API_PATH, publishBodyLimit, TOPIC_PATTERN } from '../shared/protocol';
import { bearerMatches, bearerOf } from './bearer';
import type { Permissions } from './auth/grants';
import { AuthFailure } from './auth/verifier';
import { BrokerOutcomeUnknownError, BrokerUnavailableError } from './broker';
import { postAccepted, readJsonBody, replyJson, type Reply } from './http-json';

export { PUBLISH_API_PATH };

/**
 * What a stored or delivered publication answers: its offset with a broker (`duplicate` when its
 * topic and id were stored before, within the dedupe window: the offset is the first one's), the
 * local deliveries without.
 */
export type PublishResult = { offset: number; duplicate?: true } | { delivered: number };

export interface PublishApiTarget {
  /** The bearer key; undefined: the API takes tokens only, or (without verifyToken) is off (404). */
  readonly apiKey?: string;
  /**
   * With auth on: a bearer that is not the key is an access token, checked like a connection's
   * (signature, issuer, audience, expiry, revocation); resolves with its permissions, rejects with an AuthFailure.
   * @default tokens are not taken
   */
  readonly verifyToken?: (token: string) => Promise<Permissions>;
  /** Told of each publication a token's grants refused. @default nothing */
  readonly denied?: () => void;
  readonly maxMessageBytes: number;
  publish(n: { topic: string; data: unknown; id?: string | number; ts?: number }): Promise<PublishResult>;
}

/**
 * POST /api/publish {topic, data, id?, ts?} with `Authorization: Bearer <key>`, or with auth on a
 * backend's access token whose grants allow publishing to the topic (403 naming it otherwise). Answers
 * 202 once the publication is stored (with its offset; without a broker, delivered on this
 * replica), and a 4xx naming the field for bad input: 401 key, 400 JSON/depth/topic/id, 413 body
 * or data over the limits. 503: the broker refused it, nothing was stored, retry. 504: the broker
 * did not answer in time, so it may be stored; a retry with the same id is stored at most once.
 * A repeated topic and id within the broker's dedupe window is stored once: the answer says
 * `duplicate: true` with the first one's offset.
 */
export async function servePublishApi(req: IncomingMessage, reply: Reply, target: PublishApiTarget): Promise<void> {
  const json = (status: number, body: unknown, headers: Record<string, string> = {}) => replyJson(reply, status, body, headers);
  const refuse = (status: number, field: string, error: string) => json(status, { field, error });
  const off =
    target.apiKey === undefined && !target.verifyToken ? 'the publish API is off (no key configured: server.apiKeyFile)' : undefined;
  if (!postAccepted(req, reply, { path: PUBLISH_API_PATH, off })) return;
  const caller = await callerOf(req.headers.authorization, target);
  if (caller instanceof AuthFailure) {
    if (caller.reason === 'jwks_unavailable') return json(503, { field: 'Authorization', error: caller.message }, { 'Retry-After': '5' });
    return refuse(401, 'Authorization', caller.reason === 'missing' ? caller.message : `${caller.reason}: ${caller.message}`);
  }

  const limit = publishBodyLimit(target.maxMessageBytes);
  const read = await readJsonBody(req, limit);
  if (!read.ok) {
    if (read.problem === 'aborted') return; // the client left mid-body: nobody to answer
    if (read.problem === 'too_large')
      return refuse(
        413,
        '(body)',
        `larger than ${limit} bytes (data up to the message limit, ${target.maxMessageBytes} bytes, plus the envelope)`,
      );
    return refuse(400, '(body)', read.message);
  }
  const body = read.value;
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return refuse(400, '(body)', 'must be a JSON object {topic, data, id?, ts?}');
  const { topic, data, id, ts } = body as Record<string, unknown>;
  if (typeof topic !== 'string' || !TOPIC_PATTERN.test(topic)) return refuse(400, 'topic', `must match ${TOPIC_PATTERN}`);
  if (data === undefined) return refuse(400, 'data', 'is required (any JSON value)');
  if (id !== undefined && !(typeof id === 'number' || (typeof id === 'string' && id.length > 0 && id.length <= 128)))
    return refuse(400, 'id', 'must be a number or a string of 1 to 128 characters');
  // The publisher's own clock (ms since the epoch), as a WebSocket publish may carry: push latency from there.
  if (ts !== undefined && !(typeof ts === 'number' && Number.isFinite(ts) && ts > 0))
    return refuse(400, 'ts', 'must be a positive number (ms since the epoch)');
  if (caller !== 'key' && !caller.allows('publish', topic)) {
    target.denied?.();
    return refuse(403, 'topic', `forbidden: the token grants no publish on ${topic}`);
  }
  if (Buffer.byteLength(JSON.stringify(data)) > target.maxMessageBytes)
    return refuse(413, 'data', `larger than the message limit (${target.maxMessageBytes} bytes)`);
  try {
    const result = await target.publish({ topic, data, id: id as string | number | undefined, ts: ts as number | undefined });
    return json(202, { topic, ...(id === undefined ? {} : { id }), ...result });
  } catch (error) {
    if (error instanceof BrokerUnavailableError)
      return json(503, { error: BROKER_ERROR_CODE, message: 'the broker refused it: nothing was stored; retry' }, { 'Retry-After': '1' });
    if (error instanceof BrokerOutcomeUnknownError) {
      const retry =
        id === undefined
          ? 'a retry may store it twice: send an id to make retries safe'
          : 'retry with the same id: it is stored at most once';
      return json(
        504,
        { error: BROKER_UNKNOWN_CODE, message: `the broker did not answer in time; it may be stored; ${retry}` },
        { 'Retry-After': '1' },
      );
    }
    throw error;
  }
}

/** Who is asking: the key's holder, a token's permissions, or why neither. */
async function callerOf(header: string | undefined, target: PublishApiTarget): Promise<'key' | Permissions | AuthFailure> {
  if (target.apiKey !== undefined && bearerMatches(header, target.apiKey)) return 'key';
  const token = bearerOf(header);
  const wanted = target.verifyToken ? 'a valid "Bearer <key>" or "Bearer <access token>"' : 'a valid "Bearer <key>"';
  if (token === undefined || !target.verifyToken) return new AuthFailure('missing', `${wanted} is required`);
  return target.verifyToken(token).catch((error: unknown) => {
    if (error instanceof AuthFailure) return error;
    throw error;
  });
}
