import { parseJson } from './json';

/** The publish API for backends (POST, JSON): on each replica's port, and through the proxy when the topology routes it. */
export const PUBLISH_API_PATH = '/api/publish';
/** Revocation of a subject's or a token's access (POST, JSON), under the publish API's key (server/auth/revoke-api.ts). */
export const REVOKE_API_PATH = '/api/revoke';

/**
 * How long a plain HTTP request (the publish API, a control call) may take to arrive whole at a
 * replica, and how long nginx waits between two reads of a publish body: the bodies are small,
 * and a trickled one must not hold a socket for minutes.
 */
export const REQUEST_TIMEOUT_MS = 10_000;

/** A publish API request body: the data plus the envelope (topic, id). */
export function publishBodyLimit(maxMessageBytes: number): number {
  return maxMessageBytes + 1024;
}

/**
 * The wire protocol: JSON text messages, shared by the server and the load client.
 * Every message has a `type`. Times are milliseconds since the epoch with fractions
 * (performance.timeOrigin + performance.now()), comparable between processes on one host.
 */

export type ClientMessage =
  /**
   * With auth (topology `auth.mode: jwt`), the first message: an access token from the OpenID
   * provider, never in the URL (URLs land in access logs). Without a token, the connection gets
   * only the anonymous topics, if the topology lists any. A client that sent the token with the
   * upgrade (`Authorization: Bearer`) sends no connect: hello follows the 101.
   */
  | { type: 'connect'; token?: string }
  /** A fresh token for the same subject, sent when the server warns with `expiring`. */
  | { type: 'refresh'; token: string }
  /** Echoed back as is (id, ts, payload): parity with the seed's echo server, and RTT measurement. */
  | { type: 'echo'; id: number | string; ts: number; payload?: string }
  /**
   * With `since` (the offset and epoch of the last notification the client got on this topic),
   * a replica with a broker first replays what the client missed, then goes live.
   * With `delta: 'fossil'` on a topic the topology lists in server.deltaTopics, notifications
   * carry `json` or `delta` instead of `data` (see the notification message).
   */
  | { type: 'subscribe'; topic: string; since?: { offset: number; epoch: string }; delta?: 'fossil' }
  | { type: 'unsubscribe'; topic: string }
  /** Fan-out to the topic's subscribers: this replica's, or every replica's through the broker (the publisher too, if subscribed). */
  | { type: 'publish'; topic: string; data: unknown; id?: number | string; ts?: number };

export type ServerMessage =
  /**
   * Sent once the connection may act: on open, or with auth once its `connect` is accepted (then
   * with the token's subject and expiry). Names the replica, so balancing is observable end to end.
   */
  | {
      type: 'hello';
      replica: string;
      connection: string;
      pingIntervalMs: number;
      maxMessageBytes: number;
      sub?: string;
      expiresAt?: number;
    }
  /** The token expires at `expiresAt` (ms since the epoch): send `refresh`, or be closed with 4005 after the grace. */
  | { type: 'expiring'; expiresAt: number }
  | { type: 'refreshed'; expiresAt: number }
  | { type: 'echo'; id: number | string; ts: number; payload?: string }
  /**
   * With `since`: `recovered` says whether the replay covered everything missed (false: the
   * history no longer reaches back, or the epoch changed: reload the application's state);
   * `replayed` notifications follow this message, before any live one.
   * With a broker, `offset` and `epoch` name where the subscription is gap-free from: every later
   * publication of the topic reaches it (the client's `since` when recovered).
   * `delta: true`: the subscription takes deltas (asked for, and the topic has them).
   */
  | { type: 'subscribed'; topic: string; recovered?: boolean; replayed?: number; offset?: number; epoch?: string; delta?: true }
  | { type: 'unsubscribed'; topic: string }
  /**
   * A publication was taken: without a broker, `delivered` counts this replica's subscribers it
   * reached; with one, `offset` is where the broker stored it (every replica delivers it).
   */
  | { type: 'published'; topic: string; id?: number | string; delivered?: number; offset?: number }
  /**
   * `offset` and `epoch` come with a broker (see server/broker.ts); `replica` is where it was published.
   * On a delta subscription the data comes as `json`, its JSON text, or as `delta`, a fossil delta
   * against the `json` text of the topic's previous notification to this client; applying it gives
   * this one's text. A delta comes only right after the notification it applies to; after a gap
   * or a recovery the text comes in full.
   */
  | {
      type: 'notification';
      topic: string;
      data: unknown;
      json?: string;
      delta?: string;
      id?: number | string;
      ts?: number;
      replica: string;
      offset?: number;
      epoch?: string;
    }
  /**
   * `id` names the publication an error answers (broker_unavailable, broker_outcome_unknown), so
   * the client can retry it; `topic` the subscribe or publish a grant did not allow (forbidden).
   */
  | { type: 'error'; code: ErrorCode; message: string; id?: number | string; topic?: string };

/**
 * Codes of the errors that answer a message the server cannot take as it is: not JSON, nested
 * deeper than MAX_JSON_DEPTH, an unknown type or field, binary, or a subscribe for a topic the
 * connection already holds (its first subscription stands; a second would replay again).
 */
export const ERROR_CODES = ['malformed', 'too_deep', 'unknown_type', 'invalid_field', 'binary_unsupported', 'already_subscribed'] as const;
/** Codes of the errors that answer a subscribe past a limit (per connection, per replica). */
export const SUBSCRIPTION_LIMIT_CODES = ['too_many_subscriptions', 'replica_subscriptions_full'] as const;
/** A publish the broker refused: nothing was stored, the client may retry. */
export const BROKER_ERROR_CODE = 'broker_unavailable';
/**
 * A publish the broker did not answer in time: it may have been stored, or may be stored once
 * the broker catches up. Retrying with the same id is safe (stored once within the dedupe window);
 * without an id a retry may store it twice.
 */
export const BROKER_UNKNOWN_CODE = 'broker_outcome_unknown';
/** The publish errors after which a retry with the same id is the client's move. */
export const PUBLISH_RETRY_CODES: readonly string[] = [BROKER_ERROR_CODE, BROKER_UNKNOWN_CODE];
/**
 * Codes of the errors auth answers with, the connection staying open: `forbidden`, a subscribe or
 * publish no grant allows; `auth_off`, a `connect` or `refresh` to a server running without auth.
 */
export const AUTH_ERROR_CODES = ['forbidden', 'auth_off'] as const;
export type ErrorCode =
  | (typeof ERROR_CODES)[number]
  | (typeof AUTH_ERROR_CODES)[number]
  | (typeof SUBSCRIPTION_LIMIT_CODES)[number]
  | typeof BROKER_ERROR_CODE
  | typeof BROKER_UNKNOWN_CODE;

/**
 * A topic: dot-separated names of letters, digits, `_`, `:` and `-`, 128 characters at most. No
 * empty name (`a..b`, `.a`, `a.`): a topic is a broker subject's suffix, and NATS delivers nothing
 * on a subject with an empty token.
 */
export const TOPIC_PATTERN = /^(?=.{1,128}$)[A-Za-z0-9_:-]+(?:\.[A-Za-z0-9_:-]+)*$/;

export type ParseResult = { ok: true; message: ClientMessage } | { ok: false; code: ErrorCode; message: string };

const isId = (v: unknown): v is number | string => typeof v === 'number' || (typeof v === 'string' && v.length <= 128);
const fail = (code: ErrorCode, message: string): ParseResult => ({ ok: false, code, message });

/** Only the position's own fields (a checked `since`). */
const positionOf = ({ offset, epoch }: { offset: number; epoch: string }) => ({ offset, epoch });

/** Parses and checks one client message; never throws. */
export function parseClientMessage(text: string): ParseResult {
  const parsed = parseJson(text);
  if (!parsed.ok) return fail(parsed.problem === 'too_deep' ? 'too_deep' : 'malformed', parsed.message);
  const value = parsed.value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail('malformed', 'a message is a JSON object with a type');
  }
  const m = value as Record<string, unknown>;
  switch (m.type) {
    case 'connect':
      if (m.token !== undefined && typeof m.token !== 'string') return fail('invalid_field', 'connect.token must be a string');
      return { ok: true, message: m.token === undefined ? { type: 'connect' } : { type: 'connect', token: m.token } };
    case 'refresh':
      if (typeof m.token !== 'string') return fail('invalid_field', 'refresh.token must be a string');
      return { ok: true, message: { type: 'refresh', token: m.token } };
    case 'echo':
      if (!isId(m.id)) return fail('invalid_field', 'echo.id must be a number or a short string');
      if (typeof m.ts !== 'number') return fail('invalid_field', 'echo.ts must be a number');
      if (m.payload !== undefined && typeof m.payload !== 'string') return fail('invalid_field', 'echo.payload must be a string');
      return { ok: true, message: { type: 'echo', id: m.id, ts: m.ts, payload: m.payload as string | undefined } };
    case 'subscribe':
    case 'unsubscribe':
      if (typeof m.topic !== 'string' || !TOPIC_PATTERN.test(m.topic)) {
        return fail('invalid_field', `${m.type}.topic must match ${TOPIC_PATTERN}`);
      }
      if (m.type === 'subscribe' && m.since !== undefined) {
        const since = m.since as Record<string, unknown> | null;
        if (
          typeof since !== 'object' ||
          since === null ||
          !Number.isSafeInteger(since.offset) ||
          (since.offset as number) < 0 ||
          typeof since.epoch !== 'string' ||
          since.epoch.length > 64
        ) {
          return fail('invalid_field', 'subscribe.since must be {offset: a whole number ≥ 0, epoch: a string}');
        }
      }
      if (m.type === 'subscribe' && m.delta !== undefined && m.delta !== 'fossil')
        return fail('invalid_field', "subscribe.delta must be 'fossil' (the one delta format served)");
      if (m.type === 'unsubscribe') return { ok: true, message: { type: m.type, topic: m.topic } };
      return {
        ok: true,
        message: {
          type: 'subscribe',
          topic: m.topic,
          ...(m.since === undefined ? {} : { since: positionOf(m.since as { offset: number; epoch: string }) }),
          ...(m.delta === 'fossil' ? { delta: 'fossil' as const } : {}),
        },
      };
    case 'publish':
      if (typeof m.topic !== 'string' || !TOPIC_PATTERN.test(m.topic)) {
        return fail('invalid_field', `publish.topic must match ${TOPIC_PATTERN}`);
      }
      if (m.id !== undefined && !isId(m.id)) return fail('invalid_field', 'publish.id must be a number or a short string');
      if (m.ts !== undefined && typeof m.ts !== 'number') return fail('invalid_field', 'publish.ts must be a number');
      return {
        ok: true,
        message: { type: 'publish', topic: m.topic, data: m.data, id: m.id as number | string | undefined, ts: m.ts as number | undefined },
      };
    default:
      return fail('unknown_type', `unknown message type ${JSON.stringify(m.type)}`);
  }
}

/** High-resolution wall-clock milliseconds, comparable across processes on one host. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * The project's own close codes, in RFC 6455's application range (4000–4999), split the way
 * Centrifugo splits its 3000s: 4000–4499 mean "reconnect", 4500–4999 "do not reconnect as you
 * are" (fix the client or get a new token first). One table: the server closes with these, the
 * load client reads them from here, and a test holds the README's table to it.
 */
export const APP_CLOSE_CODES = {
  /** No `connect` within auth.connectTimeoutMs. */
  authTimeout: { code: 4001, reconnect: true },
  /** The token expired and was not refreshed within the grace: reconnect with a fresh one. */
  tokenExpired: { code: 4005, reconnect: true },
  /** The token was refused (bad signature, issuer, audience, algorithm...): the reason says why. */
  invalidToken: { code: 4500, reconnect: false },
  /** Its token (by `jti`) or subject (tokens issued before the revocation) was revoked. */
  revoked: { code: 4501, reconnect: false },
  /** A message other than `connect` before the connection was authenticated, or a second `connect`. */
  badRequest: { code: 4502, reconnect: false },
} as const satisfies Record<string, { code: number; reconnect: boolean }>;

/** Close codes the project uses: RFC 6455 §7.4, and the application's own above. */
export const CloseCode = {
  tokenExpired: APP_CLOSE_CODES.tokenExpired.code,
  invalidToken: APP_CLOSE_CODES.invalidToken.code,
  badRequest: APP_CLOSE_CODES.badRequest.code,
  authTimeout: APP_CLOSE_CODES.authTimeout.code,
  revoked: APP_CLOSE_CODES.revoked.code,
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  abnormal: 1006,
  invalidPayload: 1007,
  policyViolation: 1008,
  messageTooBig: 1009,
  internalError: 1011,
  serviceRestart: 1012,
  tryAgainLater: 1013,
} as const;
