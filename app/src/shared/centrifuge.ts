import { parseJson } from './json';
import { APP_CLOSE_CODES, TOPIC_PATTERN } from './protocol';

/**
 * Centrifugo's bidirectional client protocol, version 2, JSON encoding: what the `centrifuge` SDKs
 * speak, so they work here unchanged. The shapes follow the protocol's schema
 * (github.com/centrifugal/protocol, client.proto: Command, Reply, Push) and the codes Centrifugo's
 * docs list (centrifugal.dev/docs/server/codes). Only the subset this server serves is typed; a
 * frame carries one or more commands (or replies), one JSON object per line.
 */

/** Where the replicas and nginx serve it (Centrifugo's own path, the SDKs' examples' default). */
export const CENTRIFUGE_PATH = '/connection/websocket';

/** Errors in replies to commands (client.proto Error); the connection stays open. */
export const CENTRIFUGE_ERRORS = {
  internal: { code: 100, message: 'internal server error', temporary: true },
  unauthorized: { code: 101, message: 'unauthorized' },
  permissionDenied: { code: 103, message: 'permission denied' },
  methodNotFound: { code: 104, message: 'method not found' },
  alreadySubscribed: { code: 105, message: 'already subscribed' },
  limitExceeded: { code: 106, message: 'limit exceeded' },
  badRequest: { code: 107, message: 'bad request' },
  notAvailable: { code: 108, message: 'not available' },
  tokenExpired: { code: 109, message: 'token expired' },
  unrecoverablePosition: { code: 112, message: 'unrecoverable position' },
} as const satisfies Record<string, CentrifugeError>;

/**
 * Disconnects: the WebSocket close code and reason. 3000–3499 tell the SDK to reconnect,
 * 3500–3999 not to (as this project's 4000s and 4500s do).
 */
export const CENTRIFUGE_DISCONNECTS = {
  shutdown: { code: 3001, reason: 'shutdown' },
  expired: { code: 3005, reason: 'connection expired' },
  slow: { code: 3008, reason: 'slow' },
  noPong: { code: 3012, reason: 'no pong' },
  invalidToken: { code: 3500, reason: 'invalid token' },
  badRequest: { code: 3501, reason: 'bad request' },
  stale: { code: 3502, reason: 'stale' },
  forceNoReconnect: { code: 3503, reason: 'force disconnect' },
} as const satisfies Record<string, { code: number; reason: string }>;

/**
 * The project's own auth closes (APP_CLOSE_CODES) and the Centrifugo disconnects that mean the
 * same: the server closes a Centrifugo connection with these, and the load client reads them back.
 */
export const DISCONNECT_FOR_CLOSE: Readonly<Record<number, { code: number; reason: string }>> = {
  [APP_CLOSE_CODES.authTimeout.code]: CENTRIFUGE_DISCONNECTS.stale,
  [APP_CLOSE_CODES.tokenExpired.code]: CENTRIFUGE_DISCONNECTS.expired,
  [APP_CLOSE_CODES.invalidToken.code]: CENTRIFUGE_DISCONNECTS.invalidToken,
  [APP_CLOSE_CODES.revoked.code]: CENTRIFUGE_DISCONNECTS.forceNoReconnect,
  [APP_CLOSE_CODES.badRequest.code]: CENTRIFUGE_DISCONNECTS.badRequest,
};

/** The unsubscribe push of a subscription whose token expired: the SDK subscribes again with a fresh one. */
export const UNSUBSCRIBE_EXPIRED = { code: 2501, reason: 'subscription expired' } as const;

/** Subscribe flags (SubscribeRequest.flag): the SDK asks for an error instead of an unrecovered subscription. */
export const REJECT_UNRECOVERED_FLAG = 2;

export interface CentrifugeError {
  code: number;
  message: string;
  temporary?: boolean;
}

/** A stream position (StreamPosition). */
export interface StreamPosition {
  offset: number;
  epoch: string;
}

export interface SubscribeRequest {
  channel: string;
  token?: string;
  recover?: boolean;
  offset?: number;
  epoch?: string;
  positioned?: boolean;
  recoverable?: boolean;
  flag?: number;
  /** `fossil`: the SDK's `delta: 'fossil'` (server/deltas.ts); any other format is not negotiated. */
  delta?: 'fossil';
}

/** The one request a command carries. */
export type CentrifugeRequest =
  | { kind: 'pong' }
  /** Server-side subscriptions (`subs`) are not served: none are ever announced, so the SDK sends none. */
  | { kind: 'connect'; token?: string }
  | { kind: 'subscribe'; request: SubscribeRequest }
  | { kind: 'unsubscribe'; channel: string }
  /**
   * `idempotency_key` is this server's extension, named after the key of Centrifugo's server API: a
   * retry with the same key is stored once (the broker's dedupe window). The SDKs send none.
   */
  | { kind: 'publish'; channel: string; data: unknown; idempotencyKey?: string }
  | { kind: 'history'; channel: string; limit: number; since?: StreamPosition; reverse: boolean }
  | { kind: 'refresh'; token: string }
  | { kind: 'sub_refresh'; channel: string; token: string }
  | { kind: 'ping' }
  /** presence, presence_stats, rpc, send: answered 108 "not available" (send: ignored, it has no reply). */
  | { kind: 'unsupported'; method: string };

/** One client command: its id (0 for none: a pong, or `send`) and its request. */
export type CentrifugeCommand = { id: number } & CentrifugeRequest;

/** A publication as pushed and replayed (client.proto Publication). `tags` carry the native envelope. */
export interface CentrifugePublication {
  data: unknown;
  offset?: number;
  tags?: Record<string, string>;
  /** `data` is a fossil delta against the subscription's previous publication. */
  delta?: boolean;
}

export type ParsedFrame = { ok: true; commands: CentrifugeCommand[] } | { ok: false; problem: string };

const REQUESTS = [
  'connect',
  'subscribe',
  'unsubscribe',
  'publish',
  'presence',
  'presence_stats',
  'history',
  'ping',
  'send',
  'rpc',
  'refresh',
  'sub_refresh',
] as const;

/** Parses one frame: commands separated by newlines. Never throws; any bad command fails the frame (a 3501 disconnect). */
export function parseCommands(text: string): ParsedFrame {
  const commands: CentrifugeCommand[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const parsed = parseJson(line);
    if (!parsed.ok) return { ok: false, problem: parsed.message };
    const command = commandOf(parsed.value);
    if (typeof command === 'string') return { ok: false, problem: command };
    commands.push(command);
  }
  return commands.length > 0 ? { ok: true, commands } : { ok: false, problem: 'an empty frame' };
}

type Fields = Record<string, unknown>;
const isObject = (v: unknown): v is Fields => typeof v === 'object' && v !== null && !Array.isArray(v);
const optionalString = (v: unknown) => v === undefined || typeof v === 'string';
const isOffset = (v: unknown) => v === undefined || (Number.isSafeInteger(v) && (v as number) >= 0);
const isChannel = (v: unknown): v is string => typeof v === 'string' && TOPIC_PATTERN.test(v);

/** One command, or what is wrong with it. */
function commandOf(value: unknown): CentrifugeCommand | string {
  if (!isObject(value)) return 'a command is a JSON object';
  const id = value.id ?? 0;
  if (!Number.isSafeInteger(id) || (id as number) < 0) return 'id must be a whole number';
  const present = REQUESTS.filter((r) => value[r] !== undefined && value[r] !== null);
  if (present.length === 0) return id === 0 ? { id: 0, kind: 'pong' } : 'a command carries one request';
  if (present.length > 1) return `a command carries one request, not ${present.join(' and ')}`;
  const method = present[0];
  const request = value[method];
  if (!isObject(request)) return `${method} must be an object`;
  const body = requestOf(method, request);
  return typeof body === 'string' ? `${method}: ${body}` : { id: id as number, ...body };
}

type Body = CentrifugeRequest | string;

function requestOf(method: (typeof REQUESTS)[number], r: Fields): Body {
  switch (method) {
    case 'connect':
      if (!optionalString(r.token)) return 'token must be a string';
      return { kind: 'connect', ...(r.token ? { token: r.token as string } : {}) };
    case 'subscribe': {
      if (!isChannel(r.channel)) return `channel must match ${TOPIC_PATTERN}`;
      if (!optionalString(r.token) || !optionalString(r.epoch) || !isOffset(r.offset)) return 'token, epoch or offset has the wrong type';
      const request: SubscribeRequest = { channel: r.channel };
      for (const key of ['token', 'epoch'] as const) if (r[key]) request[key] = r[key] as string;
      if (r.offset !== undefined) request.offset = r.offset as number;
      for (const key of ['recover', 'positioned', 'recoverable'] as const) if (r[key] === true) request[key] = true;
      if (Number.isSafeInteger(r.flag)) request.flag = r.flag as number;
      if (r.delta === 'fossil') request.delta = 'fossil';
      return { kind: 'subscribe', request };
    }
    case 'unsubscribe':
      return isChannel(r.channel) ? { kind: 'unsubscribe', channel: r.channel } : `channel must match ${TOPIC_PATTERN}`;
    case 'publish':
      if (!isChannel(r.channel)) return `channel must match ${TOPIC_PATTERN}`;
      if (r.data === undefined) return 'data is required';
      if (r.idempotency_key !== undefined && !(typeof r.idempotency_key === 'string' && r.idempotency_key.length <= 128))
        return 'idempotency_key must be a string of at most 128 characters';
      return { kind: 'publish', channel: r.channel, data: r.data, ...(r.idempotency_key ? { idempotencyKey: r.idempotency_key } : {}) };
    case 'history':
      return historyOf(r);
    case 'refresh':
      return typeof r.token === 'string' && r.token ? { kind: 'refresh', token: r.token } : 'token must be a string';
    case 'sub_refresh':
      if (!isChannel(r.channel) || typeof r.token !== 'string') return 'channel and token are required';
      return { kind: 'sub_refresh', channel: r.channel, token: r.token };
    case 'ping':
      return { kind: 'ping' };
    default:
      return { kind: 'unsupported', method };
  }
}

function historyOf(r: Fields): Body {
  if (!isChannel(r.channel)) return `channel must match ${TOPIC_PATTERN}`;
  const limit = r.limit ?? 0;
  if (!Number.isSafeInteger(limit)) return 'limit must be a whole number';
  let since: StreamPosition | undefined;
  if (r.since !== undefined && r.since !== null) {
    if (!isObject(r.since) || !isOffset(r.since.offset) || !optionalString(r.since.epoch)) return 'since must be {offset, epoch}';
    since = { offset: (r.since.offset as number | undefined) ?? 0, epoch: (r.since.epoch as string | undefined) ?? '' };
  }
  return { kind: 'history', channel: r.channel, limit: limit as number, reverse: r.reverse === true, ...(since ? { since } : {}) };
}
