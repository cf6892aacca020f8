import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { BROKER_ERROR_CODE, PUBLISH_API_PATH, publishBodyLimit, TOPIC_PATTERN } from '../shared/protocol';
import { readJsonBody, replyJson, type Reply } from './http-json';

export { PUBLISH_API_PATH };

/** What a stored or delivered publication answers: its offset with a broker, the local deliveries without. */
export type PublishResult = { offset: number } | { delivered: number };

/** A publication the broker did not store (nothing was acknowledged). */
export class BrokerUnavailableError extends Error {}
/** A field the broker cannot take as it is (a topic that is no valid subject). */
export class PublicationFieldError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

export interface PublishApiTarget {
  /** The bearer key; undefined: the API is off (404). */
  readonly apiKey?: string;
  readonly maxMessageBytes: number;
  publish(n: { topic: string; data: unknown; id?: string | number }): Promise<PublishResult>;
}


/**
 * POST /api/publish {topic, data, id?} with `Authorization: Bearer <key>`, for backends. Answers
 * 202 once the publication is stored (with its offset; without a broker, delivered on this
 * replica), and a 4xx naming the field for bad input: 401 key, 400 JSON/topic/id, 413 data over
 * the message limit; 503 when the broker did not store it. A repeated `id` within the broker's
 * dedupe window is stored once (the answer is the first one's offset).
 */
export async function servePublishApi(req: IncomingMessage, reply: Reply, target: PublishApiTarget): Promise<void> {
  const json = (status: number, body: unknown, headers: Record<string, string> = {}) => replyJson(reply, status, body, headers);
  const refuse = (status: number, field: string, error: string) => json(status, { field, error });
  if (target.apiKey === undefined) return json(404, { error: 'the publish API is off (no key configured: server.apiKeyFile)' });
  if (req.method !== 'POST') return json(405, { error: `${PUBLISH_API_PATH} takes POST` }, { Allow: 'POST' });
  const given = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
  if (!given || !sameKey(given, target.apiKey)) return refuse(401, 'Authorization', 'a valid "Bearer <key>" is required');

  const read = await readJsonBody(req, publishBodyLimit(target.maxMessageBytes));
  if (!read.ok) return read.problem === 'too_large' ? refuse(413, 'data', `larger than the message limit (${target.maxMessageBytes} bytes)`) : refuse(400, '(body)', 'not JSON');
  const body = read.value;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return refuse(400, '(body)', 'must be a JSON object {topic, data, id?}');
  const { topic, data, id } = body as Record<string, unknown>;
  if (typeof topic !== 'string' || !TOPIC_PATTERN.test(topic)) return refuse(400, 'topic', `must match ${TOPIC_PATTERN}`);
  if (data === undefined) return refuse(400, 'data', 'is required (any JSON value)');
  if (id !== undefined && !(typeof id === 'number' || (typeof id === 'string' && id.length > 0 && id.length <= 128))) return refuse(400, 'id', 'must be a number or a string of 1 to 128 characters');
  if (Buffer.byteLength(JSON.stringify(data)) > target.maxMessageBytes) return refuse(413, 'data', `larger than the message limit (${target.maxMessageBytes} bytes)`);
  try {
    const result = await target.publish({ topic, data, id: id as string | number | undefined });
    return json(202, { topic, ...(id === undefined ? {} : { id }), ...result });
  } catch (error) {
    if (error instanceof PublicationFieldError) return refuse(400, error.field, error.message);
    if (error instanceof BrokerUnavailableError) return json(503, { error: BROKER_ERROR_CODE, message: 'nothing was stored; retry with the same id' }, { 'Retry-After': '1' });
    throw error;
  }
}

function sameKey(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
