import type { WebSocket } from 'ws';
import {
  CENTRIFUGE_DISCONNECTS,
  CENTRIFUGE_ERRORS,
  DISCONNECT_FOR_CLOSE,
  parseCommands,
  REJECT_UNRECOVERED_FLAG,
  UNSUBSCRIBE_EXPIRED,
  type CentrifugeCommand,
  type CentrifugeError,
  type CentrifugePublication,
  type SubscribeRequest,
} from '../shared/centrifuge';
import { CloseCode, type ErrorCode, type ServerMessage } from '../shared/protocol';
import type { AuthClose, AuthOutcome, PeerAuth } from './auth/gate';
import { Payload } from './deflate-once';
import { AS_IS, fullForm, type DataForm } from './deltas';
import type { GrantAction } from '../topology';

type Notification = Extract<ServerMessage, { type: 'notification' }>;

/** What a subscribe came to, in either protocol's terms (server.ts decides, the protocols word it). */
export type SubscribeOutcome =
  /** `delta`: the subscription takes fossil deltas (server/deltas.ts). */
  | { ok: true; offset?: number; epoch?: string; recovered?: boolean; replay: Notification[]; delta?: boolean }
  | { ok: false; code: ErrorCode; message: string };

/** A Centrifugo connection's own state. */
export interface CentrifugeSession {
  connected: boolean;
  /** While the connect's token is checked: the commands sent behind it (the SDK does not wait), handled after it in order. */
  connecting?: CentrifugeCommand[];
  /** Frames due this turn: sent as one WebSocket frame, one per line, at the turn's end. */
  batch: Payload[];
  /** Topics held by a subscription token, and when it expires (ms). */
  expiries?: Map<string, number>;
}

export interface CentrifugePeer {
  readonly id: string;
  readonly ws: WebSocket;
  readonly auth: PeerAuth;
  readonly topics: Set<string>;
  readonly centrifuge?: CentrifugeSession;
}

/** What the protocol needs of the replica: the same core the native protocol uses. */
export interface CentrifugeHost<P extends CentrifugePeer> {
  readonly pingIntervalMs: number;
  readonly authEnabled: boolean;
  /** How long past its expiry a token is still honoured (auth.expiryGraceMs). */
  readonly expiryGraceMs: number;
  /** The broker's epoch: positions and recovery exist only with a broker. */
  epoch(): string | undefined;
  connect(peer: P, token: string | undefined): Promise<AuthOutcome>;
  refresh(peer: P, token: string): Promise<AuthOutcome>;
  allows(peer: P, action: GrantAction, topic: string): boolean;
  /** `granted`: a subscription token allows it, whatever the grants say; `delta`: the client takes fossil deltas. */
  subscribe(
    peer: P,
    topic: string,
    since: { offset: number; epoch: string } | undefined,
    answer: (o: SubscribeOutcome) => void,
    granted?: boolean,
    delta?: boolean,
  ): void;
  /** A subscription token for `topic` (auth/gate.ts: subscription). */
  subscriptionToken(
    peer: P,
    topic: string,
    token: string,
  ): Promise<{ ok: true; expiresAt: number } | { ok: false; failure: string; reason: string }>;
  unsubscribe(peer: P, topic: string): void;
  /** Resolves with the stored offset (with a broker). */
  publish(peer: P, topic: string, data: unknown, idempotencyKey?: string): Promise<{ offset?: number }>;
  history(topic: string, afterOffset: number): Promise<{ notifications: Notification[]; offset: number }>;
  /** Writes one frame (bounded like every write: a slow consumer is cut). */
  write(peer: P, frame: Payload): boolean;
  authClosed(peer: P, close: AuthClose): void;
  pong(peer: P): void;
  log(peer: P, what: string, error?: unknown): void;
}

/** Commands a client may send behind its connect before it is answered (the SDK sends its subscriptions). */
const MAX_WAITING_COMMANDS = 256;

/**
 * Serves Centrifugo's client protocol on one replica (shared/centrifuge.ts has the shapes): it
 * turns commands into the calls the native protocol makes (connect, subscribe with recovery,
 * publish, history) and their outcomes into replies, and wraps publications as pushes.
 */
export class CentrifugeProtocol<P extends CentrifugePeer> {
  private due: P[] = [];

  constructor(private readonly host: CentrifugeHost<P>) {}

  static session(): CentrifugeSession {
    return { connected: false, batch: [] };
  }

  /** A frame from the client: every command in it, in order. */
  onFrame(peer: P, text: string): void {
    const parsed = parseCommands(text);
    if (!parsed.ok) return this.disconnect(peer, CENTRIFUGE_DISCONNECTS.badRequest, parsed.problem);
    for (const command of parsed.commands) {
      if (peer.ws.readyState !== peer.ws.OPEN) return;
      this.onCommand(peer, command);
    }
  }

  /** A publication as a push frame, its data in `form`: encoded once per fan-out for every Centrifugo subscriber taking that form. */
  encodePush(n: Notification, form: DataForm = AS_IS): Payload {
    return Payload.of(Buffer.from(JSON.stringify({ push: { channel: n.topic, pub: publicationOf(n, form) } })));
  }

  /** Queues a frame: whatever is due for a connection in one turn leaves as one frame. */
  send(peer: P, message: Buffer | Payload): void {
    const session = peer.centrifuge!;
    const frame = message instanceof Payload ? message : Payload.of(message);
    if (session.batch.push(frame) === 1 && this.due.push(peer) === 1) setImmediate(() => this.flushAll());
  }

  /** The server's ping: an empty reply, which the SDK answers with an empty command. */
  ping(peer: P): void {
    this.send(peer, Buffer.from('{}'));
  }

  /** Sends what is queued now (before a close, so the close frame follows it). */
  flush(peer: P): void {
    const batch = peer.centrifuge!.batch;
    if (batch.length === 0) return;
    peer.centrifuge!.batch = [];
    this.host.write(peer, Payload.lines(batch));
  }

  /** An auth close in Centrifugo's codes, so the SDK reconnects (or not) as it should. */
  authClose(peer: P, close: AuthClose): void {
    this.host.authClosed(peer, close);
    if (close.code === CloseCode.tryAgainLater) return this.disconnect(peer, { code: close.code, reason: 'try again later' }, close.reason);
    this.disconnect(peer, DISCONNECT_FOR_CLOSE[close.code] ?? CENTRIFUGE_DISCONNECTS.invalidToken, close.reason);
  }

  disconnect(peer: P, disconnect: { code: number; reason: string }, detail?: string): void {
    if (detail) this.host.log(peer, `centrifuge disconnect ${disconnect.code}: ${detail}`);
    this.flush(peer);
    if (peer.ws.readyState === peer.ws.OPEN) peer.ws.close(disconnect.code, disconnect.reason);
  }

  private flushAll(): void {
    const peers = this.due;
    this.due = [];
    for (const peer of peers) this.flush(peer);
  }

  private reply(peer: P, id: number, result: Record<string, unknown>): void {
    if (id > 0) this.send(peer, Buffer.from(JSON.stringify({ id, ...result })));
  }

  private error(peer: P, id: number, error: CentrifugeError, message?: string): void {
    this.reply(peer, id, { error: { ...error, message: message ?? error.message } });
  }

  private onCommand(peer: P, command: CentrifugeCommand): void {
    const session = peer.centrifuge!;
    if (command.kind === 'pong') return this.host.pong(peer);
    if (session.connecting) {
      if (session.connecting.push(command) > MAX_WAITING_COMMANDS)
        this.disconnect(peer, CENTRIFUGE_DISCONNECTS.badRequest, `more than ${MAX_WAITING_COMMANDS} commands behind a connect`);
      return;
    }
    if (!session.connected) {
      if (command.kind === 'connect') return this.connect(peer, command.id, command.token);
      return this.disconnect(peer, CENTRIFUGE_DISCONNECTS.badRequest, `${command.kind} before connect`);
    }
    switch (command.kind) {
      case 'connect':
        return this.disconnect(peer, CENTRIFUGE_DISCONNECTS.badRequest, 'a second connect');
      case 'subscribe':
        return this.subscribe(peer, command.id, command.request);
      case 'unsubscribe':
        this.host.unsubscribe(peer, command.channel);
        session.expiries?.delete(command.channel);
        return this.reply(peer, command.id, { unsubscribe: {} });
      case 'publish':
        return this.publish(peer, command.id, command.channel, command.data, command.idempotencyKey);
      case 'history':
        return this.history(peer, command);
      case 'refresh':
        return this.refresh(peer, command.id, command.token);
      case 'ping':
        return this.reply(peer, command.id, { ping: {} });
      case 'sub_refresh':
        return this.subRefresh(peer, command.id, command.channel, command.token);
      case 'unsupported':
        return this.error(peer, command.id, CENTRIFUGE_ERRORS.notAvailable, `${command.method} is not available on this server`);
    }
  }

  private connect(peer: P, id: number, token: string | undefined): void {
    const session = peer.centrifuge!;
    if (!this.host.authEnabled) {
      session.connected = true;
      return this.reply(peer, id, { connect: this.connectResult(peer) });
    }
    session.connecting = [];
    this.host.connect(peer, token).then(
      (outcome) => {
        const waiting = session.connecting ?? [];
        session.connecting = undefined;
        if (outcome.ok) {
          session.connected = true;
          this.reply(peer, id, { connect: this.connectResult(peer) });
          for (const command of waiting) if (peer.ws.readyState === peer.ws.OPEN) this.onCommand(peer, command);
          return;
        }
        // An expired token: the SDK asks its getToken for a new one and connects again.
        if (outcome.close.failure === 'expired') return this.error(peer, id, CENTRIFUGE_ERRORS.tokenExpired);
        if (outcome.close.code === CloseCode.tryAgainLater) return this.error(peer, id, CENTRIFUGE_ERRORS.internal, outcome.close.reason);
        this.authClose(peer, outcome.close);
      },
      (error: unknown) => this.host.log(peer, 'connect failed', error),
    );
  }

  private connectResult(peer: P): Record<string, unknown> {
    return {
      client: peer.id,
      version: '',
      // Seconds, at least one; the SDK waits this plus its maxServerPingDelay for each ping.
      ping: Math.max(1, Math.round(this.host.pingIntervalMs / 1000)),
      pong: true,
      ...this.expiry(peer),
    };
  }

  /** With a token: `expires` and the seconds left, after which the SDK sends `refresh`. */
  private expiry(peer: P): Record<string, unknown> {
    const identity = peer.auth.identity;
    if (!identity) return {};
    // The native `expiring` warning is the SDK's own timer here.
    peer.auth.warned = true;
    return { expires: true, ttl: Math.max(1, Math.floor((identity.expiresAt - Date.now()) / 1000)) };
  }

  private refresh(peer: P, id: number, token: string): void {
    if (!this.host.authEnabled || !peer.auth.identity)
      return this.error(peer, id, CENTRIFUGE_ERRORS.badRequest, 'this connection has no token to refresh');
    this.host.refresh(peer, token).then(
      (outcome) => {
        if (!outcome.ok) {
          if (outcome.close.failure === 'expired') return this.error(peer, id, CENTRIFUGE_ERRORS.tokenExpired);
          return this.authClose(peer, outcome.close);
        }
        this.reply(peer, id, { refresh: { client: peer.id, version: '', ...this.expiry(peer) } });
      },
      (error: unknown) => this.host.log(peer, 'refresh failed', error),
    );
  }

  /** A subscribe: with a subscription token (auth on), checked first; it then stands in for the grants until it expires. */
  private subscribe(peer: P, id: number, request: SubscribeRequest): void {
    if (!request.token || !this.host.authEnabled) return this.subscribeChecked(peer, id, request);
    this.host.subscriptionToken(peer, request.channel, request.token).then(
      (outcome) => {
        if (!outcome.ok) return this.error(peer, id, tokenError(outcome.failure), outcome.reason);
        this.subscribeChecked(peer, id, request, outcome.expiresAt);
      },
      (error: unknown) => this.host.log(peer, 'subscription token check failed', error),
    );
  }

  private subscribeChecked(peer: P, id: number, request: SubscribeRequest, tokenExpiresAt?: number): void {
    const { channel } = request;
    const epoch = this.host.epoch();
    // An empty epoch means "any" to Centrifugo: the current one.
    const since = request.recover && epoch !== undefined ? { offset: request.offset ?? 0, epoch: request.epoch || epoch } : undefined;
    const answer = (outcome: SubscribeOutcome) => {
      if (!outcome.ok) return this.error(peer, id, errorFor(outcome.code), outcome.message);
      if (since && !outcome.recovered && (request.flag ?? 0) & REJECT_UNRECOVERED_FLAG) {
        this.host.unsubscribe(peer, channel);
        return this.error(peer, id, CENTRIFUGE_ERRORS.unrecoverablePosition);
      }
      const expiry = tokenExpiresAt === undefined ? {} : this.holdUntil(peer, channel, tokenExpiresAt);
      this.reply(peer, id, { subscribe: { ...subscribeResult(outcome, since !== undefined), ...expiry } });
    };
    this.host.subscribe(peer, channel, since, answer, tokenExpiresAt !== undefined, request.delta === 'fossil');
  }

  /** The topic is held by a token until `expiresAt`: the reply's `expires` and `ttl`, after which the SDK sends `sub_refresh`. */
  private holdUntil(peer: P, topic: string, expiresAt: number): { expires: true; ttl: number } {
    (peer.centrifuge!.expiries ??= new Map()).set(topic, expiresAt);
    return { expires: true, ttl: Math.max(1, Math.floor((expiresAt - Date.now()) / 1000)) };
  }

  /** A fresh subscription token for a topic held by one. */
  private subRefresh(peer: P, id: number, channel: string, token: string): void {
    if (!peer.centrifuge!.expiries?.has(channel))
      return this.error(peer, id, CENTRIFUGE_ERRORS.badRequest, `${channel} is not held by a subscription token`);
    this.host.subscriptionToken(peer, channel, token).then(
      (outcome) => {
        if (!outcome.ok) return this.error(peer, id, tokenError(outcome.failure), outcome.reason);
        if (!peer.centrifuge!.expiries?.has(channel))
          return this.error(peer, id, CENTRIFUGE_ERRORS.badRequest, `${channel} was unsubscribed`);
        this.reply(peer, id, { sub_refresh: this.holdUntil(peer, channel, outcome.expiresAt) });
      },
      (error: unknown) => this.host.log(peer, 'subscription token check failed', error),
    );
  }

  /** Subscriptions whose token expired past the grace end, with the push that makes the SDK subscribe again with a fresh one. */
  sweep(peer: P, now: number): void {
    const expiries = peer.centrifuge!.expiries;
    if (!expiries) return;
    for (const [topic, expiresAt] of expiries) {
      if (now <= expiresAt + this.host.expiryGraceMs) continue;
      expiries.delete(topic);
      this.host.unsubscribe(peer, topic);
      this.send(peer, Buffer.from(JSON.stringify({ push: { channel: topic, unsubscribe: UNSUBSCRIBE_EXPIRED } })));
    }
  }

  /** The reply names the stored offset (an extension the SDKs ignore), so a publisher can account for it. */
  private publish(peer: P, id: number, channel: string, data: unknown, idempotencyKey?: string): void {
    if (!this.host.allows(peer, 'publish', channel)) return this.error(peer, id, CENTRIFUGE_ERRORS.permissionDenied);
    this.host.publish(peer, channel, data, idempotencyKey).then(
      ({ offset }) => this.reply(peer, id, { publish: offset === undefined ? {} : { offset } }),
      (error: Error) => this.error(peer, id, CENTRIFUGE_ERRORS.internal, error.message),
    );
  }

  /** History from the stream: after `since` (oldest first, or newest first with `reverse`), at most `limit`. */
  private history(peer: P, command: Extract<CentrifugeCommand, { kind: 'history' }>): void {
    const { id, channel, since, limit, reverse } = command;
    const epoch = this.host.epoch();
    if (epoch === undefined) return this.error(peer, id, CENTRIFUGE_ERRORS.notAvailable, 'history needs the broker');
    if (!this.host.allows(peer, 'subscribe', channel)) return this.error(peer, id, CENTRIFUGE_ERRORS.permissionDenied);
    if (since?.epoch && since.epoch !== epoch) return this.error(peer, id, CENTRIFUGE_ERRORS.unrecoverablePosition);
    this.host.history(channel, limit === 0 ? Number.MAX_SAFE_INTEGER : (since?.offset ?? 0)).then(
      ({ notifications, offset }) => {
        const ordered = reverse ? notifications.reverse() : notifications;
        const publications = (limit < 0 ? ordered : ordered.slice(0, limit)).map((n) => publicationOf(n));
        this.reply(peer, id, { history: { publications, epoch, offset } });
      },
      (error: Error) => this.error(peer, id, CENTRIFUGE_ERRORS.internal, error.message),
    );
  }
}

/**
 * The native envelope (id, ts, replica) travels in the publication's tags, as strings. On a delta
 * subscription the data is its JSON text, or a fossil delta against the previous one with
 * `delta: true`, as the SDK's `delta: 'fossil'` decodes them.
 */
function publicationOf(n: Notification, form: DataForm = AS_IS): CentrifugePublication {
  const tags: Record<string, string> = { replica: n.replica };
  if (n.id !== undefined) tags.id = String(n.id);
  if (n.ts !== undefined) tags.ts = String(n.ts);
  const data = form.kind === 'data' ? n.data : form.text;
  return { data, ...(n.offset === undefined ? {} : { offset: n.offset }), tags, ...(form.kind === 'delta' ? { delta: true } : {}) };
}

/**
 * The subscribe reply (SubscribeResult). Publications at or below the reply's offset are not
 * sent: the SDK moves its position with each, and an unrecovered reply's offset is the replica's
 * position, below which a partial replay would move it backwards.
 */
function subscribeResult(outcome: Extract<SubscribeOutcome, { ok: true }>, recovering: boolean): Record<string, unknown> {
  if (outcome.epoch === undefined) return {};
  const offset = outcome.offset ?? 0;
  const publications = outcome.replay
    .filter((n) => (n.offset ?? 0) > offset)
    .map((n) => publicationOf(n, outcome.delta ? fullForm(n) : AS_IS));
  return {
    ...(outcome.delta ? { delta: true } : {}),
    recoverable: true,
    positioned: true,
    epoch: outcome.epoch,
    offset,
    ...(recovering ? { was_recovering: true, recovered: outcome.recovered === true } : {}),
    ...(publications.length > 0 ? { publications } : {}),
  };
}

/** A refused subscription token: expired (the SDK asks its getToken again), or not this connection's or topic's. */
function tokenError(failure: string): CentrifugeError {
  return failure === 'expired' ? CENTRIFUGE_ERRORS.tokenExpired : CENTRIFUGE_ERRORS.permissionDenied;
}

function errorFor(code: ErrorCode): CentrifugeError {
  switch (code) {
    case 'forbidden':
      return CENTRIFUGE_ERRORS.permissionDenied;
    case 'already_subscribed':
      return CENTRIFUGE_ERRORS.alreadySubscribed;
    case 'too_many_subscriptions':
    case 'replica_subscriptions_full':
      return CENTRIFUGE_ERRORS.limitExceeded;
    default:
      return CENTRIFUGE_ERRORS.internal;
  }
}
