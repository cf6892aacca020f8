import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { parseProxyWorker, PROXY_WORKER_HEADER } from '../shared/control';
import {
  BROKER_ERROR_CODE,
  BROKER_UNKNOWN_CODE,
  CloseCode,
  nowMs,
  REVOKE_API_PATH,
  parseClientMessage,
  REQUEST_TIMEOUT_MS,
  type ClientMessage,
  type ErrorCode,
  type ServerMessage,
  type SUBSCRIPTION_LIMIT_CODES,
} from '../shared/protocol';
import { authSchema, type AuthConfig, type GrantAction, type ServerConfig } from '../topology';
import { AuthGate, type AuthClose, type PeerAuth } from './auth/gate';
import { AuthFailure, TokenVerifier } from './auth/verifier';
import { RevocationBus, RevocationList, type Revocation } from './auth/revocations';
import { serveRevokeApi } from './auth/revoke-api';
import { CENTRIFUGE_DISCONNECTS, CENTRIFUGE_PATH } from '../shared/centrifuge';
import { CentrifugeProtocol, type CentrifugeHost, type CentrifugeSession, type SubscribeOutcome } from './centrifuge';
import { deflateFor, negotiatedDeflate, releaseInflate } from './compression';
import { Payload } from './deflate-once';
import { AS_IS, fullForm, TopicDeltas, withForm, type DataForm, type DeltaStep, type Position } from './deltas';
import { serveControl } from './control-endpoints';
import { bearerOf } from './bearer';
import { checkHandshake, rejectHandshake, type RejectReason } from './handshake';
import type { Logger } from './logger';
import type { ServerMetrics } from './metrics';
import { BrokerOutcomeUnknownError, notificationOf, type BrokerDelivery, type JetStreamBroker } from './broker';
import { answerClientError } from './client-error';
import { PUBLISH_API_PATH, servePublishApi, type PublishResult } from './publish-api';
import { Outbox, type Outgoing } from './outbox';
import { askPatiently, mergeAtSeam } from './recovery';
import { Shedding, type Sheddable } from './shedding';
import { TopicRegistry } from './topics';

/** Auth off: what an in-process server gets when it is given no auth section. */
const OPEN = authSchema.parse({ mode: 'none' });

export interface ServerSettings extends ServerConfig {
  readonly replicaId: string;
}

/** The client protocols: the project's own, and Centrifugo's (server/centrifuge.ts) at CENTRIFUGE_PATH. */
type Protocol = 'native' | 'centrifuge';

/** One open connection and what the server tracks for it. */
interface Peer extends Sheddable {
  readonly id: string;
  readonly ws: WebSocket;
  /** A Centrifugo connection's own state; none for the native protocol. */
  readonly centrifuge?: CentrifugeSession;
  readonly topics: Set<string>;
  /** Who it is and what it may do (auth/gate.ts). */
  readonly auth: PeerAuth;
  /** Last time anything (a pong or a message) arrived. */
  lastSeen: number;
  /** Last time a message arrived (pongs aside): an idle client's inflate stream is released. */
  lastMessageAt: number;
  lastPingAt: number;
  pingSentAt?: number;
  /** What is being sent to it: the socket's share and what waits for room. */
  readonly out: Outbox;
  /** Topics being recovered: live notifications wait here until the replay is sent. */
  recovering?: Map<string, Notification[]>;
  /**
   * The last broker position sent per topic: a notification of the same epoch at or below it (the
   * replica's own consumer lagging behind a replay) is not sent again.
   */
  lastOffset?: Map<string, { epoch: string; offset: number }>;
  /**
   * Topics subscribed with deltas (server/deltas.ts), each with the last publication sent on it:
   * the base the next delta must apply to (none yet: the next goes in full).
   */
  deltaBases?: Map<string, Position | undefined>;
}

type Notification = Extract<ServerMessage, { type: 'notification' }>;

/**
 * The notification server: one replica. Plain HTTP on the same port serves /healthz, /readyz
 * and /metrics; the configured path upgrades to WebSocket.
 */
export class NotificationServer {
  readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly peers = new Set<Peer>();
  private readonly topics = new TopicRegistry<Peer>();
  private readonly shedding = new Shedding<Peer>((reason) => this.metrics.shedCloses.inc({ reason }));
  private readonly broker?: JetStreamBroker;
  private readonly gate: AuthGate;
  private readonly verifier?: TokenVerifier;
  private readonly revocations = new RevocationList();
  private readonly centrifuge: CentrifugeProtocol<Peer>;
  private readonly deltas?: TopicDeltas;
  /** With auth and a broker: revocations reach every replica. */
  private revocationBus?: RevocationBus;
  private pendingHandshakes = 0;
  /** A rebalance round's cap on this replica's connections, and until when it holds. */
  private rebalanceCap?: { limit: number; until: number };
  private nextId = 0;
  private draining = false;
  private drained?: Promise<void>;
  private sweeper?: NodeJS.Timeout;

  constructor(
    private readonly settings: ServerSettings,
    private readonly log: Logger,
    private readonly metrics: ServerMetrics,
    private readonly options: {
      /** With a broker, publications go through it and every replica delivers them; without, fan-out is this replica's. */
      broker?: JetStreamBroker;
      /** The publish API's bearer key (read from server.apiKeyFile); without, the API is off. */
      apiKey?: string;
      /** The control endpoints' bearer key (read from CONTROL_KEY_ENV's file); without, they are off. */
      controlKey?: string;
      /** Who may connect (topology `auth`); @default auth off (main.ts always passes the topology's). */
      auth?: AuthConfig;
    } = {},
  ) {
    this.broker = options.broker;
    // Deltas need the broker's offsets (the topology refuses them without one).
    if (this.broker && settings.deltaTopics.length > 0) this.deltas = new TopicDeltas(settings.deltaTopics);
    if (options.auth?.mode === 'jwt')
      this.verifier = new TokenVerifier(options.auth, {
        jwksFetched: (result) => this.metrics.jwksFetches.inc({ result }),
        log: (error, what) => this.log.warn({ err: error }, what),
      });
    this.gate = new AuthGate(options.auth ?? OPEN, this.verifier, (identity) => this.revocations.revokes(identity), settings.clientPublish);
    this.centrifuge = new CentrifugeProtocol(this.centrifugeHost());
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: settings.maxMessageBytes,
      perMessageDeflate: deflateFor(settings.compression),
      clientTracking: false,
    });
    // A malformed upgrade request (bad key, version...): answered 400 and counted.
    this.wss.on('wsClientError', (_error, socket) => this.refuse(socket, 'invalid_handshake'));
    // A request's headers and body must arrive within REQUEST_TIMEOUT_MS: the bodies are small
    // (a publication, a control call), and a trickled one must not hold a socket for minutes.
    this.http = createServer({ requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS }, (req, res) => {
      this.onRequest(req, res).catch((error: Error) => this.requestFailed(res, error));
    });
    this.http.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    this.http.on('clientError', (error, socket) => answerClientError(error, socket));
    this.metrics.ready.set(1);
    this.metrics.sources.shedCounts = () => this.shedding.counts();
    this.metrics.sources.broker = () => this.broker?.state();
  }

  /** Starts listening (and delivering what the broker stores from now on); resolves with the bound address. */
  async listen(port = this.settings.port, host?: string): Promise<AddressInfo> {
    await this.broker?.consume(
      (d) => this.deliver(d),
      (reason) => this.metrics.brokerSkipped.inc({ reason }),
    );
    void this.verifier?.prime();
    const auth = this.options.auth;
    if (this.broker && auth?.mode === 'jwt') {
      const { config } = this.broker;
      this.revocationBus = await RevocationBus.open(
        this.broker.connection,
        { bucket: `${config.stream}_REVOKED`, ttlMs: auth.revocationTtlMs, replicas: config.streamReplicas ?? 1 },
        (r) => this.applyRevocation(r),
        (error) => this.log.error({ err: error }, 'the revocation watch ended: revocations no longer reach this replica'),
      );
    }
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    // One sweep drives pings, pong deadlines and write deadlines. Each peer is pinged a full
    // interval after its own last ping, so pings are spread rather than sent in one burst.
    const every = Math.max(10, Math.min(1000, this.settings.pingIntervalMs / 2, this.settings.writeTimeoutMs / 2));
    this.sweeper = setInterval(() => this.sweep(), every);
    const address = this.http.address() as AddressInfo;
    this.log.info({ port: address.port, path: this.settings.path, compression: this.settings.compression }, 'listening');
    return address;
  }

  get connectionCount(): number {
    return this.peers.size;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Whatever a request's handling threw: logged, and answered 500 if nothing was sent yet. */
  private requestFailed(res: ServerResponse, error: Error): void {
    this.log.error({ err: error }, 'request failed');
    if (!res.headersSent && !res.destroyed) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('internal error\n');
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const reply = (status: number, body: string, headers: Record<string, string> = {}) => {
      if (res.destroyed) return; // the client is gone
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers });
      res.end(body);
    };
    const pathname = plainPath(req.url);
    // A path with dot segments, encodings or doubled slashes: nginx matched its location on the
    // normalized form but passes the raw one, so `/internal/../api/publish` must not reach here as either.
    if (pathname === undefined) return reply(400, 'the path must be plain: no dot segments, percent-encodings or empty segments\n');
    if (pathname === '/healthz') return reply(200, 'ok\n');
    if (pathname === '/readyz') return this.draining ? reply(503, 'draining\n') : reply(200, 'ready\n');
    if (pathname === PUBLISH_API_PATH) {
      return servePublishApi(req, reply, {
        apiKey: this.options.apiKey,
        maxMessageBytes: this.settings.maxMessageBytes,
        publish: (n) => this.publish({ ...n, ts: n.ts ?? nowMs(), replica: this.settings.replicaId }),
        ...(this.gate.enabled
          ? {
              verifyToken: (token: string) =>
                this.gate.bearer(token).catch((error: unknown) => {
                  if (error instanceof AuthFailure) this.metrics.authFailures.inc({ reason: error.reason });
                  throw error;
                }),
              denied: () => this.metrics.authDenials.inc({ action: 'publish' }),
            }
          : {}),
      });
    }
    if (pathname === REVOKE_API_PATH) {
      return serveRevokeApi(req, reply, {
        apiKey: this.options.apiKey,
        authOn: this.gate.enabled,
        revoke: async (r) => {
          if (!this.revocationBus) {
            this.applyRevocation(r);
            return 'replica';
          }
          await this.revocationBus.publish(r);
          return 'fleet';
        },
      });
    }
    if (pathname.startsWith('/internal/')) {
      return serveControl(req, pathname, reply, {
        key: this.options.controlKey,
        replicaId: this.settings.replicaId,
        connections: () => this.peers.size,
        draining: () => this.draining,
        retire: (a) => this.shedding.retire(this.peers, a),
        shed: (count, windowMs) => this.shedding.shed(this.peers, count, windowMs),
        counts: () => this.shedding.counts(),
        capUntil: (limit, until) => (this.rebalanceCap = limit === undefined ? undefined : { limit, until }),
        log: this.log,
      });
    }
    if (pathname === '/metrics') {
      try {
        const text = await this.metrics.registry.metrics();
        return reply(200, text, { 'Content-Type': this.metrics.registry.contentType });
      } catch (error) {
        this.log.error({ err: error }, 'metrics collection failed');
        return reply(500, 'metrics unavailable\n');
      }
    }
    if (pathname === this.settings.path || (this.settings.centrifuge && pathname === CENTRIFUGE_PATH))
      return reply(426, 'this endpoint speaks WebSocket: send an Upgrade request\n', { Upgrade: 'websocket' });
    return reply(404, 'not found\n');
  }

  private refuse(socket: Duplex, reason: RejectReason): void {
    this.metrics.handshakeRejections.inc({ reason });
    const status = rejectHandshake(socket, reason);
    this.log.debug({ reason, status }, 'handshake refused');
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', (error) => this.log.debug({ err: error }, 'socket error during handshake'));
    const cap = this.rebalanceCap && this.rebalanceCap.until > Date.now() ? this.rebalanceCap.limit : undefined;
    const reason = checkHandshake(req, this.settings, {
      draining: this.draining,
      load: this.peers.size + this.pendingHandshakes,
      rebalanceCap: cap,
    });
    if (reason) return this.refuse(socket, reason);

    this.pendingHandshakes++;
    let settled = false;
    const settle = () => {
      if (!settled) {
        settled = true;
        this.pendingHandshakes--;
      }
    };
    socket.once('close', settle);
    const via = parseProxyWorker(req.headers[PROXY_WORKER_HEADER]);
    const protocol: Protocol = plainPath(req.url) === CENTRIFUGE_PATH ? 'centrifuge' : 'native';
    // A native client that can set headers may send its token with the upgrade (not the URL,
    // which lands in access logs): hello then follows the 101 with no round trip of its own.
    const token = protocol === 'native' && this.gate.enabled ? bearerOf(req.headers.authorization) : undefined;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      settle();
      this.onConnection(ws, socket, via, protocol, token);
    });
  }

  private onConnection(ws: WebSocket, socket: Duplex, via: Peer['via'], protocol: Protocol, token: string | undefined): void {
    const now = Date.now();
    const peer: Peer = {
      id: `${this.settings.replicaId}-${++this.nextId}`,
      ws,
      ...(protocol === 'centrifuge' ? { centrifuge: CentrifugeProtocol.session() } : {}),
      via,
      goAway: (reason) => this.closePeer(peer, CloseCode.goingAway, reason),
      topics: new Set(),
      auth: this.gate.open(now),
      lastSeen: now,
      lastMessageAt: now,
      lastPingAt: now,
      out: new Outbox(ws, socket, {
        highWater: socketHighWater(this.settings.sendBufferLimitBytes),
        holdTurn: this.settings.writeCoalescing === 'turn',
        framing: !negotiatedDeflate(ws) ? 'text' : this.settings.deflate === 'once' ? 'deflated' : 'ws',
      }),
    };
    this.peers.add(peer);
    this.shedding.opened(peer);
    this.metrics.connectionsOpened.inc();
    this.metrics.connectionsActive.set(this.peers.size);

    ws.on('message', (data, isBinary) => this.onMessage(peer, data, isBinary));
    ws.on('pong', () => this.ponged(peer));
    ws.on('error', (error: Error & { code?: string }) => this.onPeerError(peer, error));
    ws.on('close', (code) => this.onClose(peer, code));
    // With auth, hello answers the accepted connect (or the upgrade's token); a Centrifugo client always sends connect.
    if (token !== undefined) this.beforeConnect(peer, { type: 'connect', token });
    else if (!peer.auth.pending && protocol === 'native') this.hello(peer);
  }

  /** Closes with a code (after what is queued for it). */
  private closePeer(peer: Peer, code: number, reason: string): void {
    if (peer.centrifuge) this.centrifuge.flush(peer);
    if (peer.ws.readyState === WebSocket.OPEN) peer.ws.close(code, reason);
  }

  /** The core as the Centrifugo protocol sees it: the same calls the native messages make. */
  private centrifugeHost(): CentrifugeHost<Peer> {
    return {
      pingIntervalMs: this.settings.pingIntervalMs,
      authEnabled: this.gate.enabled,
      expiryGraceMs: this.options.auth?.expiryGraceMs ?? 0,
      epoch: () => this.broker?.epoch,
      connect: (peer, token) => this.gate.connect(peer.auth, token),
      refresh: (peer, token) =>
        this.gate.refresh(peer.auth, token).then((outcome) => {
          if (outcome.ok) this.metrics.authRefreshes.inc();
          return outcome;
        }),
      allows: (peer, action, topic) => {
        if (this.gate.allows(peer.auth, action, topic)) return true;
        this.metrics.authDenials.inc({ action });
        return false;
      },
      subscribe: (peer, topic, since, answer, granted, delta) => this.subscribeTopic(peer, topic, since, answer, granted, delta),
      subscriptionToken: (peer, topic, token) =>
        this.gate.subscription(peer.auth, topic, token).then((outcome) => {
          if (!outcome.ok) this.metrics.authFailures.inc({ reason: outcome.failure });
          return outcome;
        }),
      unsubscribe: (peer, topic) => this.unsubscribeTopic(peer, topic),
      publish: async (_peer, topic, data, id) => {
        const result = await this.publish({ topic, data, id, ts: nowMs(), replica: this.settings.replicaId });
        return 'offset' in result ? { offset: result.offset } : {};
      },
      history: async (topic, afterOffset) => {
        const history = await this.broker!.history(topic, afterOffset);
        return { notifications: history.deliveries.map(notificationOf), offset: this.broker!.position };
      },
      write: (peer, frame) => {
        const sent = this.write(peer, frame);
        if (sent) this.countSent('centrifuge', frame.length, 1);
        return sent;
      },
      authClosed: (peer, close) => {
        this.metrics.authFailures.inc({ reason: close.failure });
        this.log.info({ connection: peer.id, code: close.code, reason: close.reason }, 'closed for auth');
      },
      pong: (peer) => this.ponged(peer),
      log: (peer, what, error) =>
        error ? this.log.error({ err: error, connection: peer.id }, what) : this.log.debug({ connection: peer.id }, what),
    };
  }

  /** A pong (WebSocket's, or a Centrifugo client's empty command): the heartbeat's round trip. */
  private ponged(peer: Peer): void {
    const at = Date.now();
    if (peer.pingSentAt !== undefined) {
      this.metrics.heartbeatRtt.observe((at - peer.pingSentAt) / 1000);
      peer.pingSentAt = undefined;
    }
    peer.lastSeen = at;
  }

  private hello(peer: Peer): void {
    const identity = peer.auth.identity;
    this.send(peer, {
      type: 'hello',
      replica: this.settings.replicaId,
      connection: peer.id,
      pingIntervalMs: this.settings.pingIntervalMs,
      maxMessageBytes: this.settings.maxMessageBytes,
      ...(identity ? { sub: identity.sub, expiresAt: identity.expiresAt } : {}),
    });
  }

  /**
   * Before its `connect` is accepted a connection may send only that one `connect`; anything else
   * closes it (4502), as does a refused token (auth/gate.ts).
   */
  private beforeConnect(peer: Peer, message: ClientMessage): void {
    if (message.type !== 'connect' || peer.auth.pending!.verifying)
      return this.authClose(peer, { code: CloseCode.badRequest, reason: 'send connect first and wait for hello', failure: 'protocol' });
    this.gate.connect(peer.auth, message.token).then(
      (outcome) => {
        if (!outcome.ok) return this.authClose(peer, outcome.close);
        this.log.debug({ connection: peer.id, sub: peer.auth.identity?.sub }, 'authenticated');
        this.hello(peer);
      },
      (error: Error) => this.log.error({ err: error, connection: peer.id }, 'connect failed'),
    );
  }

  /** `connect` and `refresh` once connected. */
  private onAuthMessage(peer: Peer, message: Extract<ClientMessage, { type: 'connect' | 'refresh' }>): void {
    if (!this.gate.enabled)
      return this.malformed(peer, 'auth_off', 'this server runs without auth (auth.mode none): send no connect or refresh');
    if (message.type === 'connect' || !peer.auth.identity)
      return this.authClose(peer, {
        code: CloseCode.badRequest,
        reason: 'already connected; refresh needs a token connection',
        failure: 'protocol',
      });
    this.gate.refresh(peer.auth, message.token).then(
      (outcome) => {
        if (!outcome.ok) return this.authClose(peer, outcome.close);
        this.metrics.authRefreshes.inc();
        this.send(peer, { type: 'refreshed', expiresAt: peer.auth.identity!.expiresAt });
      },
      (error: Error) => this.log.error({ err: error, connection: peer.id }, 'refresh failed'),
    );
  }

  /** A revocation, from the bucket or (without a broker) the admin API: its connections close with 4501. */
  private applyRevocation(r: Revocation): void {
    this.revocations.add(r);
    this.metrics.authRevocations.inc();
    let closed = 0;
    for (const peer of this.peers) {
      const identity = peer.auth.identity;
      if (!identity || !this.revocations.revokes(identity, peer.auth.adoptedAt)) continue;
      this.authClose(peer, { code: CloseCode.revoked, reason: 'revoked', failure: 'revoked' });
      closed++;
    }
    this.log.info({ revocation: r, closed }, 'revocation applied');
  }

  private authClose(peer: Peer, close: AuthClose): void {
    if (peer.centrifuge) return this.centrifuge.authClose(peer, close);
    this.metrics.authFailures.inc({ reason: close.failure });
    this.log.info({ connection: peer.id, code: close.code, reason: close.reason }, 'closed for auth');
    if (peer.ws.readyState === WebSocket.OPEN) peer.ws.close(close.code, close.reason);
  }

  /** A subscribe or publish no grant allows: answered, the connection stays. */
  private forbidden(peer: Peer, action: GrantAction, topic: string, id?: number | string): void {
    if (action === 'publish') this.metrics.authDenials.inc({ action }); // subscribe's is counted by subscribeTopic
    this.send(peer, {
      type: 'error',
      code: 'forbidden',
      message: `no grant allows ${action} on ${topic}`,
      topic,
      ...(id === undefined ? {} : { id }),
    });
  }

  private onPeerError(peer: Peer, error: Error & { code?: string }): void {
    // ws has already closed the connection with the matching code (1009 / 1007).
    if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
      this.metrics.oversizeMessages.inc();
      this.log.warn(
        { connection: peer.id, limit: this.settings.maxMessageBytes },
        'oversize message, closed with 1009 (suspected DoS attempt)',
      );
    } else if (error.code === 'WS_ERR_INVALID_UTF8') {
      this.metrics.invalidUtf8.inc();
      this.log.warn({ connection: peer.id }, 'invalid UTF-8 in a text message, closed with 1007');
    } else {
      this.log.debug({ connection: peer.id, err: error }, 'connection error');
    }
  }

  private onClose(peer: Peer, code: number): void {
    if (!this.peers.delete(peer)) return;
    this.shedding.closed(peer);
    for (const topic of peer.topics) this.topics.unsubscribe(topic, peer);
    this.metrics.subscriptions.set(this.topics.size);
    this.metrics.connectionsClosed.inc({ code: String(code) });
    this.metrics.connectionsActive.set(this.peers.size);
  }

  private onMessage(peer: Peer, data: RawData, isBinary: boolean): void {
    peer.lastSeen = peer.lastMessageAt = Date.now();
    const buffer = data as Buffer;
    this.metrics.bytesReceived.inc(buffer.length);
    this.metrics.messageSize.observe({ direction: 'in' }, buffer.length);
    if (peer.centrifuge) {
      if (isBinary) return this.centrifuge.disconnect(peer, CENTRIFUGE_DISCONNECTS.badRequest, 'binary frame on the JSON protocol');
      this.metrics.messagesReceived.inc({ type: 'centrifuge' });
      return this.centrifuge.onFrame(peer, buffer.toString('utf8'));
    }
    if (isBinary) return this.malformed(peer, 'binary_unsupported', 'messages are JSON text');

    const parsed = parseClientMessage(buffer.toString('utf8'));
    if (!parsed.ok) return this.malformed(peer, parsed.code, parsed.message);
    const message = parsed.message;
    this.metrics.messagesReceived.inc({ type: message.type });
    if (peer.auth.pending) return this.beforeConnect(peer, message);

    switch (message.type) {
      case 'connect':
      case 'refresh':
        return this.onAuthMessage(peer, message);
      case 'echo':
        this.send(peer, message);
        return;
      case 'subscribe':
        return this.subscribeTopic(
          peer,
          message.topic,
          message.since,
          (outcome) => this.answerSubscribe(peer, message.topic, outcome),
          false,
          message.delta === 'fossil',
        );
      case 'unsubscribe':
        this.unsubscribeTopic(peer, message.topic);
        this.send(peer, { type: 'unsubscribed', topic: message.topic });
        return;
      case 'publish': {
        const { topic, id } = message;
        if (!this.gate.allows(peer.auth, 'publish', topic)) return this.forbidden(peer, 'publish', topic, id);
        this.publish({ topic, data: message.data, id, ts: message.ts, replica: this.settings.replicaId }).then(
          (result) => this.send(peer, { type: 'published', topic, id, ...result }),
          (error: Error) => {
            const code = error instanceof BrokerOutcomeUnknownError ? BROKER_UNKNOWN_CODE : BROKER_ERROR_CODE;
            this.send(peer, { type: 'error', code, message: error.message, id });
          },
        );
        return;
      }
    }
  }

  /**
   * A subscribe, in either protocol: checked (a second one for the topic, grants, limits),
   * registered, and answered once live, or once recovered from `since` (with a broker): the
   * outcome carries the replay, which the answer sends before any live notification.
   */
  private subscribeTopic(
    peer: Peer,
    topic: string,
    since: { offset: number; epoch: string } | undefined,
    answer: (o: SubscribeOutcome) => void,
    /** A subscription token allows it (Centrifugo's protocol), whatever the grants say. */
    granted = false,
    /** The client takes fossil deltas (taken only on a topic server.deltaTopics opts in). */
    delta = false,
  ): void {
    // A second subscribe (with `since` or not) would replay again, or reset the position.
    if (peer.topics.has(topic))
      return answer({ ok: false, code: 'already_subscribed', message: `already subscribed to ${topic}; unsubscribe first` });
    if (!granted && !this.gate.allows(peer.auth, 'subscribe', topic)) {
      this.metrics.authDenials.inc({ action: 'subscribe' });
      return answer({ ok: false, code: 'forbidden', message: `no grant allows subscribe on ${topic}` });
    }
    const limit = this.subscriptionLimit(peer);
    if (limit) {
      this.metrics.subscriptionRejections.inc({ limit: limit.code });
      return answer({ ok: false, ...limit });
    }
    // Recovering: registered at once, live notifications held back until the replay is out.
    const from = this.broker ? since : undefined;
    if (from) (peer.recovering ??= new Map()).set(topic, []);
    if (this.topics.subscribe(topic, peer)) peer.topics.add(topic);
    if (delta && this.deltas?.covers(topic)) {
      (peer.deltaBases ??= new Map()).set(topic, undefined);
      const plain = answer;
      answer = (outcome) => plain(outcome.ok ? { ...outcome, delta: true } : outcome);
    }
    this.metrics.subscriptions.set(this.topics.size);
    if (from) return this.startRecovery(peer, topic, from, answer);
    if (!this.broker) return answer({ ok: true, replay: [] });
    // Live from the replica's position on: nothing at or before it is sent, everything after is.
    const { epoch, position } = this.broker;
    const sent = peer.lastOffset?.get(topic);
    const offset = sent?.epoch === epoch ? Math.max(sent.offset, position) : position;
    this.sentUpTo(peer, topic, epoch, offset);
    answer({ ok: true, offset, epoch, replay: [] });
  }

  /** The native protocol's answer to a subscribe: `subscribed` and the replay, or an error. */
  private answerSubscribe(peer: Peer, topic: string, outcome: SubscribeOutcome): void {
    if (!outcome.ok) {
      if (outcome.code === 'forbidden') return this.forbidden(peer, 'subscribe', topic);
      if (outcome.code === 'already_subscribed') return this.malformed(peer, outcome.code, outcome.message);
      return void this.send(peer, { type: 'error', code: outcome.code, message: outcome.message });
    }
    const { offset, epoch, recovered, replay, delta } = outcome;
    this.send(peer, {
      type: 'subscribed',
      topic,
      ...(recovered === undefined ? {} : { recovered, replayed: replay.length }),
      ...(epoch === undefined ? {} : { offset, epoch }),
      ...(delta ? { delta } : {}),
    });
    for (const n of replay) this.send(peer, (delta ? withForm(n, fullForm(n)) : n) as ServerMessage);
  }

  private unsubscribeTopic(peer: Peer, topic: string): void {
    if (this.topics.unsubscribe(topic, peer)) peer.topics.delete(topic);
    peer.lastOffset?.delete(topic);
    peer.recovering?.delete(topic);
    peer.deltaBases?.delete(topic);
    this.metrics.subscriptions.set(this.topics.size);
  }

  /** Sends a notification to this replica's subscribers of its topic; returns how many it reached. */
  private fanOut(notification: Notification): number {
    // Encoded once per protocol and data form for every subscriber (ws would turn a string into
    // bytes on each send); a delta topic's delta is made once for all who hold its base.
    const native = new Map<DataForm, Encoded>();
    const push = new Map<DataForm, Encoded>();
    let delivered = 0;
    let pushed = 0;
    const { topic, offset } = notification;
    const subscribers = this.topics.subscribers(topic);
    if (subscribers.size === 0) this.deltas?.forget(topic);
    const step = subscribers.size > 0 ? this.deltas?.advance(notification) : undefined;
    for (const subscriber of subscribers) {
      const held = subscriber.recovering?.get(topic);
      if (held) {
        held.push(notification);
        continue;
      }
      if (offset !== undefined && notification.epoch !== undefined) {
        const last = subscriber.lastOffset?.get(topic);
        if (last && last.epoch === notification.epoch && offset <= last.offset) continue;
        this.sentUpTo(subscriber, topic, notification.epoch, offset);
      }
      const form = this.formFor(subscriber, notification, step);
      if (subscriber.centrifuge) {
        this.centrifuge.send(subscriber, encodeOnce(push, form, () => this.centrifuge.encodePush(notification, form)).frame);
        pushed++;
        continue;
      }
      const encoded = encodeOnce(native, form, () => Payload.of(Buffer.from(JSON.stringify(withForm(notification, form)))));
      if (this.write(subscriber, encoded.frame)) {
        delivered++;
        encoded.sent++;
      }
    }
    this.metrics.notificationsDelivered.inc(delivered + pushed);
    for (const { frame, sent } of native.values()) this.countSent('notification', frame.length, sent);
    return delivered + pushed;
  }

  /** The data as this subscriber takes it: as is, or (a delta subscription) in full or as a delta, which then becomes its base. */
  private formFor(subscriber: Peer, n: Notification, step: DeltaStep | undefined): DataForm {
    const bases = subscriber.deltaBases;
    if (!bases?.has(n.topic)) return AS_IS;
    const form = step?.formFor(bases.get(n.topic)) ?? fullForm(n);
    bases.set(n.topic, { epoch: n.epoch!, offset: n.offset! });
    return form;
  }

  /** A publication from the broker's stream: delivered to this replica's subscribers, with its offset and epoch. */
  private deliver(d: BrokerDelivery): void {
    this.fanOut(notificationOf(d));
  }

  /** Recovers a topic for a peer; whatever fails is logged and the subscription is closed for it, never the process. */
  private startRecovery(peer: Peer, topic: string, since: { offset: number; epoch: string }, answer: (o: SubscribeOutcome) => void): void {
    this.recover(peer, topic, since, answer).catch((error: Error) => {
      this.log.error({ err: error, topic, connection: peer.id }, 'recovery failed');
      peer.recovering?.delete(topic);
      peer.deltaBases?.delete(topic);
      if (this.topics.unsubscribe(topic, peer)) peer.topics.delete(topic);
      answer({ ok: false, code: BROKER_ERROR_CODE, message: `recovery of ${topic} failed; subscribe again` });
    });
  }

  /**
   * Recovery: replays the topic's publications after the client's offset from the stream, up to
   * the last stored when the subscription was registered, then the live ones held meanwhile that
   * came after the replay (so nothing is missed at the seam and nothing sent twice).
   */
  private async recover(
    peer: Peer,
    topic: string,
    since: { offset: number; epoch: string },
    answer: (o: SubscribeOutcome) => void,
  ): Promise<void> {
    const broker = this.broker!;
    const history = since.epoch === broker.epoch ? await this.history(peer, topic, since.offset) : undefined;
    const replay = history?.deliveries.map(notificationOf) ?? [];
    const recovered = history?.complete === true;
    const pastEnd = history?.pastEnd === true;
    const held = peer.recovering?.get(topic) ?? [];
    peer.recovering?.delete(topic);
    if (!peer.topics.has(topic)) return; // unsubscribed or closed meanwhile
    this.metrics.recoveries.inc({ result: recovered ? 'recovered' : 'unrecoverable' });
    this.metrics.recoveryReplayed.inc(replay.length);
    // Gap-free after the client's offset when recovered; otherwise from the replica's position.
    // Nothing at or below the client's offset goes out again (it has those; a lagging replica
    // would send them twice), unless the stream never reached that offset: then it would hold
    // back everything to come, and the replica's position is the floor.
    const epoch = broker.epoch;
    const offset = recovered ? since.offset : broker.position;
    const floor = since.epoch !== epoch ? 0 : pastEnd ? broker.position : since.offset;
    const out = mergeAtSeam(replay, held, floor);
    answer({ ok: true, recovered, replay: out, offset, epoch });
    this.sentUpTo(peer, topic, epoch, out.at(-1)?.offset ?? floor);
    // Both protocols send the replay past the answer's offset (server/centrifuge.ts): its last is the delta base.
    const last = out.at(-1);
    if (peer.deltaBases?.has(topic) && last?.offset !== undefined && last.offset > offset) {
      peer.deltaBases.set(topic, { epoch, offset: last.offset });
      this.deltas?.remember(last);
    }
  }

  /** The topic's history after `offset` from the broker, asked again while it does not answer and the peer still wants it. */
  private history(peer: Peer, topic: string, offset: number) {
    return askPatiently(
      () => this.broker!.history(topic, offset),
      () => peer.topics.has(topic),
      (error, retrying) => {
        if (retrying) this.metrics.recoveryRetries.inc();
        this.log.warn({ err: error, topic }, `recovery: the broker did not answer; ${retrying ? 'asking again' : 'giving up'}`);
      },
    );
  }

  /** The peer has had the topic up to `offset` of `epoch`: nothing at or below it goes out again. */
  private sentUpTo(peer: Peer, topic: string, epoch: string, offset: number): void {
    (peer.lastOffset ??= new Map()).set(topic, { epoch, offset });
  }

  /**
   * One publication, from a client or the publish API: stored in the broker (resolving with its
   * offset once acknowledged; every replica delivers it), or without a broker delivered to this
   * replica's subscribers. Rejects with BrokerUnavailableError or BrokerOutcomeUnknownError.
   */
  private async publish(n: { topic: string; data: unknown; id?: number | string; ts?: number; replica: string }): Promise<PublishResult> {
    if (!this.broker) return { delivered: this.fanOut({ type: 'notification', ...n }) };
    const started = performance.now();
    try {
      const { offset, duplicate } = await this.broker.publish(n);
      this.metrics.brokerPublishSeconds.observe((performance.now() - started) / 1000);
      return duplicate ? { offset, duplicate } : { offset };
    } catch (error) {
      this.log.warn(
        { err: error, topic: n.topic, outcome: error instanceof BrokerOutcomeUnknownError ? 'unknown' : 'not stored' },
        'the broker did not acknowledge a publication',
      );
      throw error;
    }
  }

  /** The cap a new subscription of this peer would pass, if any (the subscription is then refused). */
  private subscriptionLimit(peer: Peer): { code: (typeof SUBSCRIPTION_LIMIT_CODES)[number]; message: string } | undefined {
    const { maxSubscriptionsPerConnection: perConnection, maxSubscriptionsPerReplica: perReplica } = this.settings;
    if (peer.topics.size >= perConnection)
      return { code: 'too_many_subscriptions', message: `a connection may hold ${perConnection} subscriptions` };
    if (this.topics.size >= perReplica)
      return {
        code: 'replica_subscriptions_full',
        message: `this replica holds its limit of ${perReplica} subscriptions; try again later`,
      };
    return undefined;
  }

  private malformed(peer: Peer, code: ErrorCode, message: string): void {
    this.metrics.messagesReceived.inc({ type: 'invalid' });
    this.metrics.malformedMessages.inc({ code });
    this.log.debug({ connection: peer.id, code }, 'malformed message');
    this.send(peer, { type: 'error', code, message });
  }

  private send(peer: Peer, message: ServerMessage): boolean {
    const data = Buffer.from(JSON.stringify(message));
    const sent = this.write(peer, data);
    if (sent) this.countSent(message.type, data.length, 1);
    return sent;
  }

  /** Metrics for `count` messages of one type and size (a fan-out counts once for all its sends). */
  private countSent(type: string, bytes: number, count: number): void {
    if (count === 0) return;
    this.metrics.messagesSent.inc({ type }, count);
    this.metrics.bytesSent.inc(bytes * count);
    const sizes = this.metrics.messageSize.labels({ direction: 'out' });
    for (let i = 0; i < count; i++) sizes.observe(bytes);
  }

  /**
   * Sends with two bounds: unsent data may not pass the send buffer limit (a slow consumer is
   * closed, not allowed to grow memory), and a write must progress within the write timeout.
   */
  private write(peer: Peer, data: Outgoing): boolean {
    if (peer.ws.readyState !== WebSocket.OPEN) return false;
    if (peer.out.unsent + data.length > this.settings.sendBufferLimitBytes) {
      this.closeSlowConsumer(peer);
      return false;
    }
    peer.out.push(data);
    return true;
  }

  /**
   * A slow consumer: closed with 1008. What waits in its outbox is dropped, so the close frame
   * goes right behind what the socket holds, and a consumer that still reads gets it. As for any
   * write, one whose socket makes no progress within the write timeout is terminated; so is one
   * whose socket has handed all of it, the close frame too, to the kernel, which still delivers it.
   * (Progress shows late: the kernel wakes a writer only once half its send buffer, up to 4 MB,
   * has drained, so a one-second grace cut consumers that were still reading.)
   */
  private closeSlowConsumer(peer: Peer): void {
    const { ws } = peer;
    this.metrics.slowConsumerCloses.inc();
    this.log.warn(
      { connection: peer.id, unsent: peer.out.unsent, limit: this.settings.sendBufferLimitBytes },
      'slow consumer, closing with 1008',
    );
    peer.out.drop();
    ws.close(CloseCode.policyViolation, 'slow consumer');
    const graceMs = this.settings.writeTimeoutMs;
    let left = ws.bufferedAmount;
    const check = () => {
      if (ws.readyState === WebSocket.CLOSED) return;
      if (ws.bufferedAmount > 0 && ws.bufferedAmount < left) {
        left = ws.bufferedAmount;
        return void setTimeout(check, graceMs).unref();
      }
      ws.terminate();
    };
    setTimeout(check, graceMs).unref();
  }

  private sweep(): void {
    const now = Date.now();
    const { pingIntervalMs, pongTimeoutMs, writeTimeoutMs } = this.settings;
    for (const peer of this.peers) {
      if (peer.ws.readyState !== WebSocket.OPEN) continue;
      if (now - peer.lastSeen > pongTimeoutMs) {
        this.metrics.heartbeatTimeouts.inc();
        this.log.info({ connection: peer.id, silentMs: now - peer.lastSeen }, 'no pong within the pong timeout, terminating');
        peer.ws.terminate();
        continue;
      }
      if (peer.out.pending > 0 && now - peer.out.lastProgress > writeTimeoutMs) {
        this.metrics.writeTimeouts.inc();
        this.log.info({ connection: peer.id, pending: peer.out.pending }, 'write made no progress within the write timeout, terminating');
        peer.ws.terminate();
        continue;
      }
      if (now - peer.lastMessageAt > this.settings.inflateIdleMs && releaseInflate(peer.ws)) this.metrics.inflateReleases.inc();
      if (peer.centrifuge) this.centrifuge.sweep(peer, now);
      const auth = this.gate.due(peer.auth, now);
      if (auth === 'warn') {
        peer.auth.warned = true;
        if (!peer.centrifuge) this.send(peer, { type: 'expiring', expiresAt: peer.auth.identity!.expiresAt });
      } else if (auth) {
        this.authClose(peer, auth);
        continue;
      }
      if (now - peer.lastPingAt >= pingIntervalMs) {
        peer.lastPingAt = now;
        peer.pingSentAt = now;
        if (peer.centrifuge) this.centrifuge.ping(peer);
        else peer.ws.ping();
      }
    }
  }

  /**
   * Graceful drain: readiness goes false and new upgrades get 503; every client gets 1001
   * (going away: reconnect elsewhere), spread over the drain window so they do not all come
   * back at once; whatever is left at the deadline is terminated. Resolves once all are gone
   * and the listener is closed.
   */
  drain(): Promise<void> {
    if (this.drained) return this.drained;
    this.draining = true;
    // The drain closes everyone with its own spread; planned sheds would only duplicate it.
    this.shedding.cancel();
    this.metrics.ready.set(0);
    const started = Date.now();
    const { drainWindowMs, drainDeadlineMs } = this.settings;
    const order = shuffle([...this.peers]);
    this.log.info({ connections: order.length, windowMs: drainWindowMs }, 'draining');

    this.drained = new Promise<void>((resolve) => {
      let next = 0;
      const step = Math.max(1, Math.min(50, drainWindowMs / Math.max(1, order.length)));
      const tick = setInterval(() => {
        const elapsed = Date.now() - started;
        // Close everyone whose slot in the window has come.
        const due = order.length <= 1 || drainWindowMs === 0 ? order.length : Math.floor((elapsed / drainWindowMs) * order.length) + 1;
        for (; next < Math.min(due, order.length); next++) {
          const peer = order[next];
          this.closePeer(peer, CloseCode.goingAway, 'server draining');
        }
        if (this.peers.size === 0 && next >= order.length) finish('all closed');
        else if (elapsed >= drainDeadlineMs) finish('deadline');
      }, step);
      const finish = (why: string) => {
        clearInterval(tick);
        for (const peer of this.peers) peer.ws.terminate();
        this.log.info({ why, terminated: this.peers.size, elapsedMs: Date.now() - started }, 'drained');
        this.stop().then(resolve, resolve);
      };
    });
    return this.drained;
  }

  /** Stops at once: no drain (tests and fatal errors). */
  async stop(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.verifier?.close();
    this.revocationBus?.close();
    this.shedding.cancel();
    await this.broker?.close().catch(() => undefined);
    for (const peer of this.peers) peer.ws.terminate();
    await new Promise<void>((resolve) => {
      if (!this.http.listening) return resolve();
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
  }
}

/**
 * Unsent bytes a connection's socket may hold before its messages wait in the outbox: enough that
 * a consumer keeping up never waits there, a small share of the send buffer limit so that a slow
 * one's close frame is not stuck behind much.
 */
export function socketHighWater(sendBufferLimitBytes: number): number {
  return Math.min(64 * 1024, Math.floor(sendBufferLimitBytes / 4));
}

/**
 * The request's path without its query, if it is plain: no `.` or `..` segment, no empty segment,
 * no percent-encoding. Undefined otherwise (answered 400). The replica's routes are all plain, so
 * nothing is lost by refusing instead of normalizing.
 */
export function plainPath(url: string | undefined): string | undefined {
  const path = (url ?? '/').split('?')[0];
  if (!path.startsWith('/') || path.includes('%') || path.includes('//')) return undefined;
  return path.split('/').some((segment) => segment === '.' || segment === '..') ? undefined : path;
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

/** A fan-out's frame for one data form, and how many subscribers it was written to. */
interface Encoded {
  readonly frame: Payload;
  sent: number;
}

/** One encoding per data form, made on first use. */
function encodeOnce(cache: Map<DataForm, Encoded>, form: DataForm, encode: () => Payload): Encoded {
  let encoded = cache.get(form);
  if (!encoded) cache.set(form, (encoded = { frame: encode(), sent: 0 }));
  return encoded;
}
