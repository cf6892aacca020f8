import { connect } from '@nats-io/transport-node';
import {
  DeliverPolicy,
  jetstream,
  JetStreamApiError,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type MsgRequest,
  type NextMsgRequest,
  type StreamConfig,
} from '@nats-io/jetstream';
import type { BrokerConfig } from '../topology';
import { parseJson } from '../shared/json';
import type { ServerMessage } from '../shared/protocol';
import type { Logger } from './logger';
import { RecentDeliveries } from './recent-deliveries';

/**
 * The replica's side of the broker (NATS JetStream). Every publication goes into one stream,
 * on subject `<prefix>.<topic>`; every replica consumes the whole stream, in order, and delivers
 * to its own subscribers. So a notification reaches every subscriber of its topic whatever
 * replica each one landed on, and the publisher's replica delivers it the same way as the others.
 *
 * Offsets are stream sequences: increasing across all topics, so increasing within each topic,
 * and the same on every replica. The epoch is the stream's creation time: a stream that lost its
 * history (deleted and created again) has another, so offsets from before mean nothing in it.
 */

type NatsConnection = Awaited<ReturnType<typeof connect>>;

/** What is stored in the stream for one publication. */
export interface StoredNotification {
  topic: string;
  data: unknown;
  id?: number | string;
  ts?: number;
  /** The replica the publication came in on. */
  replica: string;
}

export interface BrokerDelivery extends StoredNotification {
  offset: number;
  epoch: string;
}

/** The message a subscriber gets for a delivery (live or replayed). */
export function notificationOf(d: BrokerDelivery): Extract<ServerMessage, { type: 'notification' }> {
  return { type: 'notification', topic: d.topic, data: d.data, id: d.id, ts: d.ts, replica: d.replica, offset: d.offset, epoch: d.epoch };
}

/** A publication the broker refused: known not stored. */
export class BrokerUnavailableError extends Error {}
/** A publication the broker did not answer for in time: it may be stored (see BROKER_UNKNOWN_CODE). */
export class BrokerOutcomeUnknownError extends Error {}

/**
 * The publish error, by what is known of the outcome. Refused for sure: JetStream answered with
 * an error, nobody answered at once (no stream: "no responders"), or the connection is closed
 * (nothing went out). Anything else, a timeout above all, is unknown: the request may have
 * reached the stream, and a client buffered while reconnecting or a stalled server still
 * delivers it later.
 */
export function publishFailure(error: unknown): BrokerUnavailableError | BrokerOutcomeUnknownError {
  // By name where the class is not exported from the packages the app depends on.
  const refused = error instanceof JetStreamApiError || ['ClosedConnectionError', 'JetStreamNotEnabled'].includes((error as Error).name);
  const message = (error as Error).message;
  return refused ? new BrokerUnavailableError(message) : new BrokerOutcomeUnknownError(message);
}

/**
 * The dedupe key of a publication: its topic and its id with the id's type, so the same id on
 * another topic, or 123 beside "123", is another publication. JSON keeps it one header line.
 */
export function dedupeKey(topic: string, id: number | string): string {
  return JSON.stringify([topic, id]);
}

/** Why a message in the stream is not delivered: see decodeStored. */
export type SkipReason = 'undecodable' | 'invalid' | 'undeliverable';

/**
 * A stored message as a notification, or why not. Whatever is in the stream may have come from a
 * backend publishing straight to NATS, or from an older version: JSON nested deeper than
 * MAX_JSON_DEPTH or not JSON is `undecodable`, a value without the fields is `invalid`. Either
 * is skipped, counted and logged, never fatal.
 */
export function decodeStored(text: string): StoredNotification | SkipReason {
  const parsed = parseJson(text);
  if (!parsed.ok) return 'undecodable';
  const v = parsed.value as Partial<StoredNotification> | null;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'invalid';
  if (v.id !== undefined && typeof v.id !== 'number' && !(typeof v.id === 'string' && v.id.length <= 128)) return 'invalid';
  if (v.ts !== undefined && typeof v.ts !== 'number') return 'invalid';
  return { topic: '', data: v.data, id: v.id, ts: v.ts, replica: typeof v.replica === 'string' ? v.replica.slice(0, 255) : 'unknown' };
}

/**
 * The first message on `subject` at or after `seq`: nats-server's MSG.GET takes `next_by_subj`
 * (2.9 does), but nats.js types that request for direct gets only, which a stream allows only
 * with allow_direct.
 */
const nextOf = (subject: string, seq: number) => ({ seq, next_by_subj: subject }) as NextMsgRequest as unknown as MsgRequest;

/** The stream's settings, from the topology: history per topic and in time, the dedupe window. */
export function streamConfig(config: BrokerConfig): Partial<StreamConfig> & { name: string; subjects: string[] } {
  return {
    name: config.stream,
    subjects: [`${config.subjectPrefix}.>`],
    retention: RetentionPolicy.Limits,
    max_msgs_per_subject: config.historyPerTopic,
    max_age: config.historyMaxAgeMs * 1e6,
    duplicate_window: config.dedupeWindowMs * 1e6,
    storage: config.storage === 'memory' ? StorageType.Memory : StorageType.File,
    num_replicas: config.streamReplicas ?? 1,
  };
}

/** Setup tries at start, a second apart: a forming cluster elects its leader well within this. */
const SETUP_ATTEMPTS = 60;
/** What JetStream answers while its cluster elects a leader (a node joined or left): worth waiting out. */
const NOT_READY = /timeout|temporarily unavailable|no responders|insufficient resources/i;

/**
 * Runs a setup step until JetStream answers it, a second apart, at most SETUP_ATTEMPTS times: a
 * cluster still electing its leader times requests out, and a replica that exits instead is
 * restarted in a loop and joins the service later. Other errors throw at once.
 */
async function whenReady<T>(step: string, log: Logger, run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (error) {
      if (attempt >= SETUP_ATTEMPTS || !NOT_READY.test((error as Error).message)) throw error;
      log.warn({ attempt, error: (error as Error).message }, `JetStream not ready yet; retrying ${step}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/** How often the replica compares its position with the stream's: the lag metric, and the stall watchdog. */
const STALL_CHECK_MS = 5_000;
/**
 * How long the replica's consumer create may take before it is asked again. nats-server 2.9 puts
 * a new R1 consumer of a replicated stream on any of its servers, a stopped one included
 * (nats-server#7165, fixed in 2.12): with one of three down, a third of creates never answer.
 * A create that reached a live server answered in 1–4 ms here (2026-12-08, loopback), so the
 * default 5 s only delays a replica's start; a slow but live answer is asked for again.
 */
const CONSUMER_CREATE_TIMEOUT_MS = 2_000;
/** Recent deliveries kept in memory for recoveries: per topic (at most historyPerTopic), and topics; bytes: broker.recentBytes. */
const RECENT_PER_TOPIC = 256;
const RECENT_TOPICS = 10_000;

export class JetStreamBroker {
  private messages?: ConsumerMessages;
  private onDelivery?: (d: BrokerDelivery) => void;
  private onSkip?: (reason: SkipReason) => void;
  private isConnected = true;
  /** Whether the last health check (a request the broker must answer) was answered: false while it stalls. */
  private answering = true;
  /** The last offset this replica delivered (the stream's last when it connected, at first). */
  private delivered: number;
  /** Offsets stored but not yet delivered by this replica, as of the last look (every 5 s). */
  private lagNow = 0;
  private lagTimer?: NodeJS.Timeout;
  private restarting = false;
  private readonly recent: RecentDeliveries<BrokerDelivery>;
  /** The ordered consumer's creates (and the library's re-creates) time out sooner than publishes. */
  private readonly consumers: JetStreamClient['consumers'];

  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    /** Kept: creating one checks the API with a request of its own. */
    private readonly jsm: JetStreamManager,
    readonly config: BrokerConfig,
    /** The stream's creation time: changes when the stream loses its history. */
    readonly epoch: string,
    /** The stream's last sequence when this replica connected: it delivers what comes after. */
    startAfter: number,
    private readonly log: Logger,
  ) {
    this.delivered = startAfter;
    this.consumers = jetstream(nc, { timeout: CONSUMER_CREATE_TIMEOUT_MS }).consumers;
    this.recent = new RecentDeliveries(startAfter, {
      perTopic: Math.min(RECENT_PER_TOPIC, config.historyPerTopic),
      maxTopics: RECENT_TOPICS,
      maxBytes: config.recentBytes,
    });
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') this.isConnected = false;
        else if (s.type === 'reconnect') this.isConnected = true;
        if (s.type === 'disconnect' || s.type === 'reconnect') log.warn({ event: s.type, server: s.server }, `broker ${s.type}`);
      }
    })().catch(() => undefined);
    this.lagTimer = setInterval(() => {
      const before = this.delivered;
      // The look is also the health check: a broker that is connected but stalled (stopped,
      // overloaded) answers nothing, and `connected` goes false until it answers again.
      this.bounds().then(
        ({ last }) => {
          this.answering = true;
          this.lagNow = Math.max(0, last - this.delivered);
          // Behind, and not one delivery since the last look: the consumer is stuck (see restartConsumer).
          if (this.lagNow > 0 && this.delivered === before && this.onDelivery) this.restartConsumer();
        },
        () => (this.answering = false), // the last lag stands
      );
    }, STALL_CHECK_MS);
    this.lagTimer.unref();
  }

  /** The connection, for what else the replicas share through the broker (auth/revocations.ts). */
  get connection(): NatsConnection {
    return this.nc;
  }

  /** The last offset this replica delivered: a subscription registered now gets every later one. */
  get position(): number {
    return this.delivered;
  }

  /**
   * For the metrics: connected now and answering the health check, how far behind the stream this
   * replica's deliveries are, and the bytes of recent deliveries held for recoveries.
   */
  state(): { connected: boolean; lag: number; recentBytes: number } {
    return { connected: this.isConnected && this.answering && !this.nc.isClosed(), lag: this.lagNow, recentBytes: this.recent.bytes };
  }

  /** Connects, and creates the stream (or brings its limits to the topology's). */
  static async connect(
    config: BrokerConfig,
    name: string,
    log: Logger,
    credentials?: { user: string; pass: string },
  ): Promise<JetStreamBroker> {
    const nc = await connect({
      servers: config.urls,
      name,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      ...credentials,
    });
    // jetstreamManager asks for the account's JetStream info: a leaderless cluster times it out too.
    const jsm = await whenReady('the JetStream check', log, () => jetstreamManager(nc));
    const wanted = streamConfig(config);
    const exists = () =>
      jsm.streams.info(config.stream).then(
        () => true,
        (error: Error) => {
          if (/stream not found/i.test(error.message)) return false;
          throw error;
        },
      );
    await whenReady('the stream setup', log, async () => {
      if (await exists()) return jsm.streams.update(config.stream, wanted);
      return jsm.streams.add(wanted).catch(async (error: Error) => {
        // Replicas starting together all found no stream and all added it: nats-server 2.9 answers
        // the ones that lost "subjects overlap". The stream is there now; another stream holding
        // the subjects is not, and is refused as it was.
        if (!/subjects overlap|already in use/i.test(error.message) || !(await exists())) throw error;
        return jsm.streams.update(config.stream, wanted);
      });
    });
    const info = await jsm.streams.info(config.stream);
    log.info({ urls: config.urls, stream: config.stream, epoch: info.created, lastOffset: info.state.last_seq }, 'broker connected');
    return new JetStreamBroker(nc, jetstream(nc), jsm, config, info.created, info.state.last_seq, log);
  }

  /** The subject of a topic (TOPIC_PATTERN rules out empty tokens). */
  subject(topic: string): string {
    return `${this.config.subjectPrefix}.${topic}`;
  }

  /**
   * Stores one publication; resolves once JetStream acknowledged it, with its offset. The same
   * topic and id (dedupeKey) within the dedupe window is stored once: the answer is the first
   * one's offset, with `duplicate`. Rejects with BrokerUnavailableError or BrokerOutcomeUnknownError.
   */
  async publish(notification: StoredNotification): Promise<{ offset: number; duplicate: boolean }> {
    const { topic, id } = notification;
    // Disconnected: nats.js would buffer the request and send it on reconnect, so its outcome
    // would be unknown; refused here, nothing goes out and the answer is certain.
    if (!this.isConnected) throw new BrokerUnavailableError('the broker is disconnected');
    try {
      const ack = await this.js.publish(
        this.subject(topic),
        JSON.stringify(notification),
        id === undefined ? {} : { msgID: dedupeKey(topic, id) },
      );
      return { offset: ack.seq, duplicate: ack.duplicate };
    } catch (error) {
      throw publishFailure(error);
    }
  }

  /**
   * Delivers every publication stored after this replica connected, in stream order. The ordered
   * consumer resumes after the last message it delivered when the connection comes back, so a
   * broker outage loses nothing and repeats nothing.
   */
  async consume(onDelivery: (d: BrokerDelivery) => void, onSkip?: (reason: SkipReason) => void): Promise<void> {
    this.onDelivery = onDelivery;
    this.onSkip = onSkip;
    await whenReady('the consumer', this.log, () => this.startConsumer());
  }

  /** An ordered consumer from the first offset this replica has not delivered. */
  private async startConsumer(): Promise<void> {
    const consumer = await this.consumers.get(this.config.stream, {
      filter_subjects: `${this.config.subjectPrefix}.>`,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.delivered + 1,
    });
    // Pull requests expire (and heartbeats are checked) every few seconds rather than the default
    // 30: the library also waits that long before it looks again after a failed check on reconnect.
    const messages = await consumer.consume({ expires: STALL_CHECK_MS });
    this.messages = messages;
    const prefix = this.config.subjectPrefix.length + 1;
    void (async () => {
      for await (const m of messages) {
        // A replaced consumer's last messages, or a redelivery: each offset goes out once.
        if (m.seq <= this.delivered) continue;
        this.delivered = m.seq;
        const stored = decodeStored(m.string());
        if (typeof stored === 'string') {
          this.skip(stored, m.seq, m.subject);
          continue;
        }
        const delivery = { ...stored, topic: m.subject.slice(prefix), offset: m.seq, epoch: this.epoch };
        this.recent.add(delivery.topic, delivery, m.data.length);
        try {
          this.onDelivery?.(delivery);
        } catch (error) {
          this.skip('undeliverable', m.seq, m.subject, error);
        }
      }
    })().catch((error: Error) => this.log.error({ err: error }, 'broker consumer stopped'));
  }

  /** A stored message not delivered: counted and logged, and the consumer goes on. */
  private skip(reason: SkipReason, offset: number, subject: string, error?: unknown): void {
    this.log.warn({ offset, subject, reason, err: error }, 'a stored notification cannot be delivered; skipped');
    this.onSkip?.(reason);
  }

  /**
   * After a broker restart the library's consumer can sit idle behind the stream (a consumer
   * check that timed out on reconnect is retried only after a long backoff): replaced by a new
   * one from the same position, so the replica catches up at once and loses nothing.
   */
  private restartConsumer(): void {
    if (this.restarting) return;
    this.restarting = true;
    this.log.warn(
      { offset: this.delivered, lag: this.lagNow },
      'broker consumer stalled behind the stream; starting a new one from where it was',
    );
    const old = this.messages;
    void Promise.resolve(old?.close())
      .catch(() => undefined)
      .then(() => this.startConsumer())
      .catch((error: Error) => this.log.warn({ err: error }, 'broker consumer restart failed; the next check tries again'))
      .finally(() => (this.restarting = false));
  }

  /** The last stored offset, and the oldest the stream still holds. */
  private async bounds(): Promise<{ first: number; last: number }> {
    const info = await this.jsm.streams.info(this.config.stream);
    return { first: info.state.first_seq, last: info.state.last_seq };
  }

  /**
   * A topic's publications after `afterOffset`, up to the stream's last offset when asked (later
   * ones come live), and whether they are all of them. Offsets are stream sequences shared by all topics, so what the stream
   * dropped cannot be attributed to a topic afterwards; the answer is conservative: complete only
   * if nothing aged out past `afterOffset` (the stream's first sequence is at most the next one)
   * and the topic has fewer than historyPerTopic publications since (the per-topic limit drops
   * the oldest only when a topic holds that many).
   */
  async history(topic: string, afterOffset: number): Promise<{ deliveries: BrokerDelivery[]; complete: boolean; pastEnd?: boolean }> {
    // Within what this replica delivered lately: from memory, all of it (live ones follow).
    const recent = this.recent.after(topic, afterOffset);
    if (recent) return { deliveries: recent, complete: true };
    const { first, last: upTo } = await this.bounds();
    // A position the stream never reached is no position: nothing can be vouched for.
    if (afterOffset > upTo) return { deliveries: [], complete: false, pastEnd: true };
    // One stored message at a time from the stream's leader, not through a consumer: nats-server
    // 2.9 places a new consumer on any of the stream's servers, an offline one included, and its
    // creation then times out (a third of them with one of three servers down, as while a swarm
    // node is drained: test/integration/broker.test.ts). A read creates nothing.
    const deliveries: BrokerDelivery[] = [];
    for (let seq = afterOffset + 1; seq <= upTo; ) {
      const m = await this.jsm.streams.getMessage(this.config.stream, nextOf(this.subject(topic), seq));
      if (!m || m.seq > upTo) break;
      seq = m.seq + 1;
      const stored = decodeStored(m.string());
      if (typeof stored === 'string') this.skip(stored, m.seq, m.subject);
      else deliveries.push({ ...stored, topic, offset: m.seq, epoch: this.epoch });
    }
    const complete = first <= afterOffset + 1 && deliveries.length < this.config.historyPerTopic;
    return { deliveries, complete };
  }

  async close(): Promise<void> {
    clearInterval(this.lagTimer);
    await this.messages?.close();
    await this.nc.close();
  }
}
