import type { connect as netConnect, Socket } from 'node:net';
import { connect as tlsConnect, TLSSocket, type ConnectionOptions, type PeerCertificate, type SecureContext } from 'node:tls';
import type { ClientRequest, IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import { CloseCode, nowMs, PUBLISH_RETRY_CODES, type ServerMessage } from '../shared/protocol';
import type { LoadProfile } from '../shared/profile';
import { classifyHandshakeError, UNFINISHED } from './connect-errors';
import { connectTcp, TCP_CANCELLED, type PendingTcp, type Target } from './connector';
import type { DeliveryLedger, Window } from './delivery';
import type { HandshakeGate } from './handshake-gate';
import { recordMs, type Stats } from './stats';
import type { HeldToken, TokenSource } from './tokens';
import type { PayloadSource } from './payloads';
import { DeltaDecoder, type DeltaData } from './deltas';
import { wireFor, type Outgoing, type Wire } from './wire';
import type { ApiAnswer, ApiPublisher } from './api-publisher';

/** What every virtual user of one process shares. */
export interface RunContext {
  readonly url: string;
  readonly profile: LoadProfile;
  readonly stats: Stats;
  /** TLS verification: a CA to trust, or verification off (only with --insecure). */
  readonly ca?: Buffer;
  /** Where `url` connects (host, port, TLS or not). */
  readonly target: Target;
  /**
   * The TLS context every connection of the process shares (the CA parsed once): without it Node
   * builds one per connection, which was a third of the client's CPU in a reconnect storm.
   */
  readonly secureContext?: SecureContext;
  readonly insecure: boolean;
  /** Global index → this user sends echo messages and publishes. */
  isSender(index: number): boolean;
  /** Per-sender publish rate (messages/s). */
  readonly publishRatePerSender: number;
  sourceAddressFor(index: number): string | undefined;
  /** False once the run is stopping: no more reconnects. */
  running(): boolean;
  /** False once the run is settling: publications still in flight arrive, no new ones go out. */
  publishing(): boolean;
  /** Which publications were stored, and which of them each subscriber got. */
  readonly ledger: DeliveryLedger;
  /** This process's cap on handshakes in flight (reconnects included). */
  readonly gate: HandshakeGate;
  /** The id of an injected fault that just hit this replica (its closes are the fault's), if any. */
  faultOn(replica: string): string | undefined;
  /** The id of an injected fault of this kind (one that hits every replica) that just happened, if any. */
  faultOfKind(kind: string): string | undefined;
  /** The id of an injected fault that refuses handshakes now (a proxy going down, until the backup answers), if any. */
  faultRefusing(): string | undefined;
  /**
   * Unique to this run (and process): publication ids start with it, so a broker's dedupe window
   * never takes one run's publications for another's.
   */
  readonly runId: string;
  /** With auth: where each user gets its tokens. */
  readonly tokens?: TokenSource;
  /** What echoes and publications carry (profile `payload`). */
  readonly payloads: PayloadSource;
  /** With the profile's `publishApi`: publications go through the publish API instead of the WebSocket. */
  readonly publisher?: ApiPublisher;
}

/** A refused publication is sent again at most this often (about 10 s of broker outage). */
const PUBLISH_RETRIES = 20;
/** The pause before a refused publication goes again: random, so refused senders do not retry in step. */
const retryPauseMs = () => 200 + Math.random() * 800;

/**
 * Closes the server sends to move a client elsewhere: going away (drain, a reload's retired
 * proxy worker, a rebalance), service restart, try again later. The client reconnects, as
 * asked: nothing was cut.
 */
const RECONNECT_CLOSE_CODES: readonly number[] = [CloseCode.goingAway, CloseCode.serviceRestart, CloseCode.tryAgainLater];
/** Closes that refuse the token a connection offered. */
const TOKEN_REFUSED_CODES: readonly number[] = [CloseCode.invalidToken, CloseCode.badRequest, CloseCode.authTimeout];
/** A held token is used for a new connection only with this much life left; otherwise a fresh one is fetched first. */
const TOKEN_MIN_LIFE_MS = 5_000;

/*
 * Per-connection state lives in plain objects, and the handlers that read it are shared by every
 * user: a heap snapshot at 3,000 connections held put about 1.2 KB a user in closures and their
 * contexts (five WebSocket listeners, the attempt's fail paths, each send schedule's timers).
 */

/** One connection attempt: its timings and its handshake slot, kept on its WebSocket and TLS socket. */
interface Attempt {
  readonly user: VirtualUser;
  readonly t0: number;
  tTcp: number;
  tTls: number;
  /** Counted once: a handshake can fail several ways at once (an error, then its close). */
  failed: boolean;
  readonly release: () => void;
}

const ATTEMPT = Symbol('attempt');
type WithAttempt = { [ATTEMPT]?: Attempt };
const attemptOf = (emitter: object): Attempt => (emitter as WithAttempt)[ATTEMPT]!;

/** A send schedule of one connection: echoes or publications, at a mean spacing; `due` in performance.now() ms. */
interface Schedule {
  readonly user: VirtualUser;
  readonly sends: 'echo' | 'publish';
  readonly meanMs: number;
  due: number;
  timer?: NodeJS.Timeout;
}

/**
 * One simulated client: connects (timing TCP, TLS and the upgrade separately), learns its
 * replica from the hello, subscribes to its topic, sends echoes on a Poisson or fixed schedule
 * (RTT measured from when each was due, so a stalled sender cannot hide latency), publishes,
 * measures push delivery, and reconnects with exponential backoff and full jitter when the
 * connection fails or the server closes it.
 */
export class VirtualUser {
  private ws?: WebSocket;
  private active = true;
  private attempt = 0;
  private isOpen = false;
  private closingByUs = false;
  private schedules: Schedule[] = [];
  private reconnectTimer?: NodeJS.Timeout;
  /** A TCP connect in progress (no WebSocket yet). */
  private pendingTcp?: PendingTcp;
  private nextId = 0;
  /** Publications sent, over its connections: where it is in the payload sequence. */
  private publications = 0;
  /** The replica of the current connection (from its hello). */
  private replica?: string;
  /** The injected fault that cut this user's last connection, until it is open again. */
  private cutBy?: string;
  /** The TLS session of its last connection: a reconnect resumes it, as a returning client would. */
  private tlsSession?: Buffer;
  /** The last notification's position on this user's topic: sent as `since` when it subscribes again. */
  private position?: { offset: number; epoch: string };
  /** What this user's subscription is owed (with a broker): see delivery.ts. */
  private window?: Window;
  // The maps and the delta decoder are made on first use: most users never publish, and an empty
  // Map holds about 200 bytes, a held connection's worth of them at 50,000.
  /** Publications of this connection not yet acknowledged, by id, with their retries so far. */
  private unacknowledged?: Map<string, { message: Outgoing; tries: number }>;
  /** Echoes of this connection not yet answered: id → when sent (epoch ms). */
  private outstanding?: Map<number, number>;
  /** When the current connection's socket was asked for (performance.now()), until its hello. */
  private connectStartedAt?: number;
  /** With auth: the token it connects and refreshes with. */
  private token?: HeldToken;
  /** The current connection's protocol (a Centrifugo wire keeps per-connection state). */
  private wire: Wire;
  /** The connection's delta bases (profile `delta`): each connection starts without. */
  private deltas?: DeltaDecoder;
  /** Centrifugo's protocol: the token is refreshed on the client's own timer. */
  private refreshTimer?: NodeJS.Timeout;

  constructor(
    private readonly index: number,
    private readonly ctx: RunContext,
  ) {
    this.wire = wireFor(ctx.profile.protocol);
  }

  start(): void {
    this.connect();
  }

  /** Retires this user: closes with 1000 (an expected close) and never reconnects. */
  stop(): Promise<void> {
    this.active = false;
    this.clearTimers();
    // Retired mid-run: owed nothing after what it had. At the run's end: owed everything stored.
    if (this.window) this.ctx.ledger.close(this.window, this.ctx.running() ? (this.position?.offset ?? this.window.start) : null);
    clearTimeout(this.reconnectTimer);
    this.pendingTcp?.cancel();
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      ws.once('close', () => resolve());
      this.closingByUs = true;
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(1000, 'load finished');
      setTimeout(() => {
        ws.terminate();
        resolve();
      }, 3000).unref();
    });
  }

  /** Opens a connection once the handshake gate has a slot (with auth, once it holds a token with life left). */
  private connect(): void {
    const { tokens } = this.ctx;
    this.token ??= tokens?.take(this.index);
    if (tokens && !(this.token && this.token.expiresAt - Date.now() > TOKEN_MIN_LIFE_MS)) {
      this.fetchToken(tokens).then(
        () => this.connect(),
        () => this.scheduleReconnect(),
      );
      return;
    }
    const queuedAt = performance.now();
    this.ctx.gate.enter((release) => this.open(release, queuedAt));
  }

  /** A fresh token from the provider; a failure is counted as an error (token_fetch) and rethrown. */
  private async fetchToken(tokens: TokenSource): Promise<HeldToken> {
    try {
      this.token = await tokens.token(this.index, this.ctx.isSender(this.index));
      this.ctx.stats.counters.tokens++;
      return this.token;
    } catch (error) {
      this.ctx.stats.error('token_fetch');
      throw error;
    }
  }

  /** Centrifugo's protocol: a fresh token goes a second before the current one expires. */
  private armRefresh(expiresAt: number | undefined): void {
    clearTimeout(this.refreshTimer);
    if (!this.wire.refreshesOnTimer || expiresAt === undefined) return;
    this.refreshTimer = setTimeout(() => this.refresh(), Math.max(0, expiresAt - Date.now() - 1000));
  }

  /** The server warned that the token expires: a fresh one goes in a refresh. */
  private refresh(): void {
    const { tokens } = this.ctx;
    if (!tokens) return;
    this.fetchToken(tokens).then(
      (held) => this.send({ type: 'refresh', token: held.token }),
      () => undefined, // counted; the server closes with 4005 after the grace, and the reconnect fetches again
    );
  }

  private open(release: () => void, queuedAt: number): void {
    const { ctx } = this;
    if (!this.active || !ctx.running()) return release();
    // Connect time starts here, at the socket: the wait for a slot is the client's, reported apart.
    const t0 = performance.now();
    this.connectStartedAt = t0;
    recordMs(ctx.stats.histograms.handshakeQueue, t0 - queuedAt);
    this.closingByUs = false;
    const attempt: Attempt = { user: this, t0, tTcp: 0, tTls: 0, failed: false, release };
    this.pendingTcp = connectTcp(ctx.target, ctx.sourceAddressFor(this.index), ctx.profile.connectTimeoutMs, (error, tcp) => {
      this.pendingTcp = undefined;
      if (error || !tcp) return this.failWith(attempt, error ?? new Error(TCP_CANCELLED));
      attempt.tTcp = performance.now();
      this.upgrade(tcp, attempt);
    });
  }

  /** An attempt that did not open, counted once (as the fault's, unfinished, or an error of `kind`); then a reconnect. */
  fail(attempt: Attempt, kind: string): void {
    attempt.release();
    if (attempt.failed || this.isOpen) return;
    attempt.failed = true;
    const { ctx } = this;
    // Refused while an injected proxy fault moves the address: the fault's, counted with it.
    const fault = ctx.faultRefusing();
    if (fault) ctx.stats.faultError(fault);
    // Cut off by the run's end, not refused: the target had no say, so it is not an error.
    else if (kind === UNFINISHED) ctx.stats.counters.unfinished++;
    else {
      ctx.stats.counters.failed++;
      ctx.stats.error(kind);
    }
    this.scheduleReconnect();
  }

  private failWith(attempt: Attempt, error: Error): void {
    // Cut off by the run's end while connecting (ws: "closed before the connection was established").
    const kind = this.active ? classifyHandshakeError(error) : UNFINISHED;
    // The first of a kind nobody has named yet is shown as it came, so it can be named.
    if (kind === 'other' && !this.ctx.stats.errors.has('other'))
      console.error(`unclassified handshake error: ${(error as Error & { code?: string }).code ?? ''} ${error.message}`);
    this.fail(attempt, kind);
  }

  /** The WebSocket (TLS, then the HTTP upgrade) over a TCP connection that is up. */
  private upgrade(tcp: Socket, attempt: Attempt): void {
    const { ctx } = this;
    const { target, profile } = ctx;
    const { keyParam } = profile;
    const url = keyParam ? `${ctx.url}${ctx.url.includes('?') ? '&' : '?'}${keyParam}=${this.index}` : ctx.url;
    this.wire = wireFor(profile.protocol);
    this.deltas = undefined;
    const ws = new WebSocket(url, {
      ...(this.tokenInHeader() ? { headers: { authorization: `Bearer ${this.token!.token}` } } : {}),
      perMessageDeflate: profile.compression
        ? { clientNoContextTakeover: true, serverNoContextTakeover: true, clientMaxWindowBits: 10, threshold: 256 }
        : false,
      // What is left of the connect budget after TCP.
      handshakeTimeout: Math.max(1, profile.connectTimeoutMs - (attempt.tTcp - attempt.t0)),
      ca: ctx.ca,
      rejectUnauthorized: !ctx.insecure,
      createConnection: ((options: ConnectionOptions) => {
        if (!target.secure) return tcp;
        const tls = tlsConnect({
          ...options,
          socket: tcp,
          servername: target.servername,
          secureContext: ctx.secureContext,
          session: this.tlsSession,
        });
        (tls as WithAttempt)[ATTEMPT] = attempt;
        (tls as LeafOnly).getPeerCertificate = leafCertificate;
        tls.on('session', onSession);
        tls.once('secureConnect', onSecureConnect);
        return tls;
      }) as unknown as typeof netConnect, // ws calls it with one options object; the overloads of net.connect do not describe that
    });
    this.ws = ws;
    (ws as WithAttempt)[ATTEMPT] = attempt;
    ws.on('unexpected-response', onRefused);
    ws.on('error', onHandshakeError);
    ws.on('open', onOpen);
    ws.on('message', onMessage);
    ws.on('close', onClose);
  }

  /** Whether this connection's token goes in the upgrade's header (native protocol only). */
  private tokenInHeader(): boolean {
    return this.token !== undefined && !this.wire.connectsAlways && this.ctx.profile.tokens?.via === 'header';
  }

  // Called by the handlers below the class, which every user's sockets and timers share.

  keepSession(session: Buffer): void {
    this.tlsSession = session;
  }

  secured(attempt: Attempt, resumed: boolean): void {
    attempt.tTls = performance.now();
    if (resumed) this.ctx.stats.counters.tlsResumed++;
  }

  handshakeError(attempt: Attempt, error: Error): void {
    if (!this.isOpen) this.failWith(attempt, error);
  }

  opened(attempt: Attempt): void {
    const now = performance.now();
    attempt.release();
    this.isOpen = true;
    this.attempt = 0;
    const { stats, target } = this.ctx;
    const { t0, tTcp, tTls } = attempt;
    stats.opened();
    if (this.cutBy) stats.faultReconnected(this.cutBy, Date.now());
    this.cutBy = undefined;
    recordMs(stats.histograms.connect, now - t0);
    recordMs(stats.histograms.tcp, tTcp - t0);
    if (target.secure && tTls) recordMs(stats.histograms.tls, tTls - tTcp);
    recordMs(stats.histograms.upgrade, now - (tTls || tTcp || t0));
    // With auth the token goes first, unless the upgrade carried it; hello answers it.
    if ((this.token && !this.tokenInHeader()) || this.wire.connectsAlways)
      this.send({ type: 'connect', ...(this.token ? { token: this.token.token } : {}) });
    if (!this.active) void this.stop();
  }

  closed(attempt: Attempt, actualCode: number): void {
    const { ctx } = this;
    // Judged by what it means natively (a Centrifugo 3005 is a 4005); counted as it came.
    const code = this.wire.nativeClose(actualCode);
    attempt.release();
    this.clearTimers();
    // Echoes still unanswered are lost when the connection broke, not when we closed it.
    if (!this.closingByUs) ctx.stats.counters.lost += this.outstanding?.size ?? 0;
    this.outstanding?.clear();
    // Publications unanswered at a close are not retried on the next connection.
    this.unacknowledged?.clear();
    if (!this.isOpen) {
      // A handshake that ended without 'open' (counted once by fail()); one we cut off because
      // the run ended is reported as such, not hidden.
      this.fail(attempt, this.active ? 'closed_before_open' : UNFINISHED);
      return;
    }
    this.isOpen = false;
    this.countAuthClose(code);
    // A revocation closes exactly the revoked users: the revoke fault's closes.
    const revoked = code === CloseCode.revoked ? ctx.faultOfKind('revoke') : undefined;
    const fault = revoked ?? (this.replica === undefined ? undefined : ctx.faultOn(this.replica));
    const kind = this.closingByUs || RECONNECT_CLOSE_CODES.includes(code) ? 'expected' : fault ? { fault } : 'unexpected';
    ctx.stats.closed(actualCode, kind);
    if (typeof kind === 'object') this.cutBy = kind.fault;
    if (this.replica !== undefined) ctx.stats.left(this.replica);
    this.replica = undefined;
    if (!this.closingByUs) this.scheduleReconnect();
  }

  /** Auth's closes, counted; a refused or revoked token is dropped, so the reconnect fetches a fresh one. */
  private countAuthClose(code: number): void {
    const { counters } = this.ctx.stats;
    if (code === CloseCode.tokenExpired) counters.expiredCloses++;
    else if (code === CloseCode.revoked) counters.revokedCloses++;
    else if (TOKEN_REFUSED_CODES.includes(code)) counters.denied++;
    else return;
    this.token = undefined;
  }

  onMessage(data: Buffer): void {
    const { stats } = this.ctx;
    stats.counters.received++;
    stats.counters.bytesReceived += data.length;
    const decoded = this.wire.decode(data.toString());
    if (!decoded) return stats.error('bad_server_message');
    if (decoded.answer) this.ws?.send(decoded.answer);
    for (const message of decoded.messages) this.handle(message);
  }

  private handle(message: ServerMessage): void {
    const { stats } = this.ctx;
    switch (message.type) {
      case 'hello':
        if (this.connectStartedAt !== undefined) recordMs(stats.histograms.ready, performance.now() - this.connectStartedAt);
        this.connectStartedAt = undefined;
        this.replica = message.replica;
        stats.landed(message.replica);
        this.armRefresh(message.expiresAt);
        this.afterHello();
        return;
      case 'echo': {
        const now = nowMs();
        const sentAt = this.outstanding?.get(message.id as number);
        this.outstanding?.delete(message.id as number);
        stats.rtt(now - message.ts, sentAt === undefined ? undefined : now - sentAt);
        return;
      }
      case 'notification':
        stats.counters.notifications++;
        if (typeof message.ts === 'number') stats.push(nowMs() - message.ts);
        if (message.json !== undefined || message.delta !== undefined) this.decodeData(message.topic, message);
        if (message.replica !== this.replica) stats.counters.crossReplica++;
        if (typeof message.offset === 'number' && typeof message.epoch === 'string') {
          const last = this.position?.epoch === message.epoch ? this.position.offset : undefined;
          // Offsets are stream positions: they only grow within a topic. The same one again is a
          // duplicate; a smaller one came out of order.
          if (last !== undefined && message.offset === last) stats.counters.duplicated++;
          else if (last !== undefined && message.offset < last) stats.counters.reordered++;
          else {
            this.position = { offset: message.offset, epoch: message.epoch };
            if (this.window) this.ctx.ledger.receive(this.window, message.offset);
          }
        }
        return;
      case 'expiring':
        this.refresh();
        return;
      case 'refreshed':
        stats.counters.refreshed++;
        this.armRefresh(message.expiresAt);
        return;
      case 'published':
        if (message.id !== undefined) this.unacknowledged?.delete(String(message.id));
        if (typeof message.offset === 'number') this.ctx.ledger.acknowledge(message.topic, message.offset);
        return;
      case 'subscribed':
        if (message.recovered === true) stats.counters.recovered++;
        else if (message.recovered === false) stats.counters.unrecoverable++;
        if (message.recovered !== true && typeof message.offset === 'number' && typeof message.epoch === 'string')
          this.startWindow(message.topic, message.offset, message.epoch);
        return;
      case 'error': {
        stats.counters.serverErrors++;
        // A publication the broker did not store, or did not answer for: retried with its id
        // (stored once however often it is sent); while the broker is restarting on purpose, the
        // refusal is the fault's.
        const retry = PUBLISH_RETRY_CODES.includes(message.code);
        this.countRefusal(retry, `server_${message.code}`);
        if (retry && message.id !== undefined) this.retryPublish(String(message.id));
        return;
      }
      default:
        return;
    }
  }

  /**
   * The subscription is gap-free after `offset`: a first subscription starts owing from there, and
   * one whose gap could not be recovered stops owing what was missed and starts again.
   */
  private startWindow(topic: string, offset: number, epoch: string): void {
    const { ledger } = this.ctx;
    if (this.window) ledger.close(this.window, this.position?.offset ?? this.window.start);
    this.window = ledger.open(topic, offset);
    // So a reconnect before the first notification still recovers from here.
    this.position ??= { offset, epoch };
  }

  private afterHello(): void {
    const { profile } = this.ctx;
    // After a reconnect, from where it left off: the replica replays what was missed (with a broker).
    if (profile.topics > 0)
      this.send({
        type: 'subscribe',
        topic: `t${this.index % profile.topics}`,
        ...(this.position ? { since: this.position } : {}),
        ...(profile.delta ? { delta: 'fossil' } : {}),
      });
    if (!this.ctx.isSender(this.index)) return;
    if (profile.messageRate > 0) this.schedule(profile.messageRate, 'echo');
    if (this.ctx.publishRatePerSender > 0 && profile.topics > 0) this.schedule(this.ctx.publishRatePerSender, 'publish');
  }

  /** Sends at `rate` per second with Poisson or fixed spacing, each timed from when it was due. */
  private schedule(rate: number, sends: Schedule['sends']): void {
    const meanMs = 1000 / rate;
    // A random phase, so senders do not fire in lockstep.
    const schedule: Schedule = { user: this, sends, meanMs, due: performance.now() + Math.random() * meanMs };
    this.schedules.push(schedule);
    arm(schedule);
  }

  /** A schedule's send is due: sent, timed from when it was due, and the next one armed. */
  sendDue(schedule: Schedule): void {
    if (!this.isOpen) return;
    // Timers may fire a fraction of a millisecond before a fractional due time; a message is
    // never "due" later than it is actually sent.
    if (schedule.sends === 'echo') this.sendEcho(performance.timeOrigin + Math.min(schedule.due, performance.now()));
    else this.publish();
    const { meanMs } = schedule;
    schedule.due += this.ctx.profile.arrival === 'poisson' ? -Math.log(1 - Math.random()) * meanMs : meanMs;
    arm(schedule);
  }

  /** A delta subscription's data, rebuilt and checked; one that does not apply is an error. */
  private decodeData(topic: string, data: DeltaData): void {
    const { counters } = this.ctx.stats;
    let rebuilt: unknown;
    try {
      const { text, wireBytes } = (this.deltas ??= new DeltaDecoder()).decode(topic, data);
      counters[data.delta === undefined ? 'deltaFull' : 'deltaApplied']++;
      counters.deltaWireBytes += wireBytes;
      counters.deltaDataBytes += text.length;
      rebuilt = JSON.parse(Buffer.from(text).toString());
    } catch {
      return this.ctx.stats.error('delta_not_applied');
    }
    // Past fossil's checksum: the rebuilt data against the publication as it was sent.
    const matches = this.ctx.payloads.matches(rebuilt);
    if (matches === false) this.ctx.stats.error('delta_mismatch');
    else if (matches) counters.deltaVerified++;
  }

  private sendEcho(dueEpochMs: number): void {
    const id = ++this.nextId;
    (this.outstanding ??= new Map()).set(id, nowMs());
    this.send({ type: 'echo', id, ts: dueEpochMs, payload: this.ctx.payloads.echo(this.index, id) });
  }

  private publish(): void {
    if (!this.ctx.publishing()) return;
    const topics = this.ctx.profile.topics;
    this.ctx.stats.counters.published++;
    const id = `${this.ctx.runId}-${this.index}-${++this.nextId}`;
    const { data, ownTopic } = this.ctx.payloads.publication(this.index, this.publications++);
    const message = {
      type: 'publish',
      topic: `t${ownTopic ? this.index % topics : Math.floor(Math.random() * topics)}`,
      data,
      ts: nowMs(),
      id,
    } as const;
    if (this.ctx.publisher) return this.publishThroughApi(this.ctx.publisher, message, 0);
    (this.unacknowledged ??= new Map()).set(id, { message, tries: 0 });
    this.send(message);
  }

  /** As a backend: POST /api/publish; a refusal the broker caused (503, 504) is sent again with the same id. */
  private publishThroughApi(publisher: ApiPublisher, m: { topic: string; data: unknown; id: string; ts: number }, tries: number): void {
    const { stats } = this.ctx;
    const answered = (a: ApiAnswer) => {
      if (a.status === 202) {
        if (a.offset !== undefined) this.ctx.ledger.acknowledge(m.topic, a.offset);
        return;
      }
      const retry = a.status === 503 || a.status === 504;
      this.countRefusal(retry, `api_${a.status}`);
      if (!retry || tries >= PUBLISH_RETRIES) return;
      stats.counters.publishRetries++;
      setTimeout(() => this.ctx.running() && this.publishThroughApi(publisher, m, tries + 1), retryPauseMs());
    };
    publisher.publish({ topic: m.topic, data: m.data, id: m.id, ts: m.ts }).then(answered, () => stats.error('api_unreachable'));
  }

  /**
   * A refused publication: one the broker did not store, or did not answer for (`retry`), is the
   * fault's while the broker is restarting on purpose; anything else is an error of this name.
   */
  private countRefusal(retry: boolean, error: string): void {
    const fault = retry ? this.ctx.faultOfKind('restart-broker') : undefined;
    if (fault) this.ctx.stats.faultError(fault);
    else this.ctx.stats.error(error);
  }

  /** Sends a refused publication again (same id) after a short random pause; gives up after a few. */
  private retryPublish(id: string): void {
    const pending = this.unacknowledged?.get(id);
    if (!pending) return;
    if (++pending.tries > PUBLISH_RETRIES) {
      this.unacknowledged?.delete(id);
      return;
    }
    this.ctx.stats.counters.publishRetries++;
    // Only while it is still this connection's (a close clears them): never on the next one.
    setTimeout(() => this.unacknowledged?.get(id) === pending && this.send(pending.message), retryPauseMs());
  }

  private send(message: Outgoing): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const text = this.wire.encode(message);
    this.ctx.stats.counters.sent++;
    this.ctx.stats.counters.bytesSent += Buffer.byteLength(text);
    ws.send(text);
  }

  private scheduleReconnect(): void {
    const { reconnect } = this.ctx.profile;
    if (!this.active || !reconnect.enabled || !this.ctx.running()) return;
    // Exponential backoff with full jitter: uniform in [0, min(max, initial * 2^attempt)].
    const ceiling = Math.min(reconnect.maxDelayMs, reconnect.initialDelayMs * 2 ** this.attempt);
    this.attempt++;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      if (!this.active || !this.ctx.running()) return;
      this.ctx.stats.counters.reconnects++;
      this.connect();
    }, Math.random() * ceiling);
  }

  /** Stops the send schedules (the connection is gone or going). */
  private clearTimers(): void {
    for (const s of this.schedules) clearTimeout(s.timer);
    this.schedules = [];
    clearTimeout(this.refreshTimer);
  }
}

type LeafOnly = { getPeerCertificate(detailed?: boolean): PeerCertificate };

/**
 * Node's TLS client, once OpenSSL has verified the chain, asks for the server's certificate with
 * its issuers (`getPeerCertificate(true)`, in `_tls_wrap`'s onConnectSecure) only to pass it to
 * `checkServerIdentity`, which reads the leaf's subject and subjectaltname. Building the issuers'
 * objects was the client's largest single item in a connect's profile, about ten times the leaf
 * alone (docs/benchmarks/client.md, "Node's identity check"): so each socket answers with the leaf.
 */
function leafCertificate(this: TLSSocket): PeerCertificate {
  return TLSSocket.prototype.getPeerCertificate.call(this, false);
}

// Shared by every user: a listener's `this` is its socket, and the socket's attempt says whose it is.
function onSession(this: TLSSocket, session: Buffer): void {
  attemptOf(this).user.keepSession(session);
}

function onSecureConnect(this: TLSSocket): void {
  const attempt = attemptOf(this);
  attempt.user.secured(attempt, this.isSessionReused());
}

function onRefused(this: WebSocket, req: ClientRequest, res: IncomingMessage): void {
  const attempt = attemptOf(this);
  attempt.user.fail(attempt, `http_${res.statusCode}`);
  res.resume();
  req.destroy();
  this.terminate();
}

function onHandshakeError(this: WebSocket, error: Error): void {
  const attempt = attemptOf(this);
  attempt.user.handshakeError(attempt, error);
}

function onOpen(this: WebSocket): void {
  const attempt = attemptOf(this);
  attempt.user.opened(attempt);
}

function onMessage(this: WebSocket, data: Buffer): void {
  attemptOf(this).user.onMessage(data);
}

function onClose(this: WebSocket, code: number): void {
  const attempt = attemptOf(this);
  attempt.user.closed(attempt, code);
}

/** A schedule's timer: the schedule rides as the timer's argument, so no closure is made per send. */
function arm(schedule: Schedule): void {
  schedule.timer = setTimeout(onDue, Math.max(0, schedule.due - performance.now()), schedule);
}

function onDue(schedule: Schedule): void {
  schedule.user.sendDue(schedule);
}
