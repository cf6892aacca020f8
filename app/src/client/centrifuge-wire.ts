import { DISCONNECT_FOR_CLOSE, type CentrifugePublication } from '../shared/centrifuge';
import { BROKER_ERROR_CODE, type ServerMessage } from '../shared/protocol';
import type { Outgoing, Wire } from './wire';

/** Centrifugo's disconnects and the native closes that mean the same: the server's table, read backwards. */
const NATIVE_CLOSE_OF: Record<number, number> = Object.fromEntries(
  Object.entries(DISCONNECT_FOR_CLOSE).map(([native, disconnect]) => [disconnect.code, Number(native)]),
);

/** What a command's reply answers: kept by command id until it comes. */
type Pending =
  | { kind: 'connect' | 'refresh' }
  | { kind: 'echo'; echo: number; ts: number }
  | { kind: 'subscribe'; topic: string; recovering: boolean }
  | { kind: 'publish'; topic: string; publication: string };

type Reply = {
  id?: number;
  error?: { code: number; message: string; temporary?: boolean };
  push?: { channel: string; pub?: CentrifugePublication };
  [result: string]: unknown;
};

/**
 * The load client's own lean speaker of Centrifugo's protocol (shared/centrifuge.ts), one per
 * connection: no SDK, so its CPU per delivery compares with the native client's. Echoes become
 * `ping` commands (their replies time the round trip); a publication carries its id as the
 * `idempotency_key` extension and its send time in its data, so retries and latency work as natively.
 */
export class CentrifugeWire implements Wire {
  readonly connectsAlways = true;
  readonly refreshesOnTimer = true;
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  /** Each subscription's epoch, from its reply: pushes carry only offsets. */
  private readonly epochs = new Map<string, string>();
  /** Subscriptions that negotiated deltas: their data is text, full or a delta (client/deltas.ts). */
  private readonly deltaTopics = new Set<string>();

  encode(m: Outgoing): string {
    const id = ++this.nextId;
    switch (m.type) {
      case 'connect':
      case 'refresh':
        this.pending.set(id, { kind: m.type });
        return JSON.stringify({ id, [m.type]: m.token ? { token: m.token } : {} });
      case 'echo':
        this.pending.set(id, { kind: 'echo', echo: m.id, ts: m.ts });
        return JSON.stringify({ id, ping: {} });
      case 'subscribe': {
        this.pending.set(id, { kind: 'subscribe', topic: m.topic, recovering: m.since !== undefined });
        const recover = m.since ? { recover: true, offset: m.since.offset, epoch: m.since.epoch } : {};
        return JSON.stringify({ id, subscribe: { channel: m.topic, ...recover, ...(m.delta ? { delta: m.delta } : {}) } });
      }
      case 'publish':
        this.pending.set(id, { kind: 'publish', topic: m.topic, publication: m.id });
        return JSON.stringify({ id, publish: { channel: m.topic, data: { ...(m.data as object), ts: m.ts }, idempotency_key: m.id } });
    }
  }

  decode(text: string): { messages: ServerMessage[]; answer?: string } | undefined {
    const messages: ServerMessage[] = [];
    let answer: string | undefined;
    for (const line of text.split('\n')) {
      let reply: Reply;
      try {
        reply = JSON.parse(line);
      } catch {
        return undefined;
      }
      if (reply.push?.pub) messages.push(this.notification(reply.push.channel, reply.push.pub));
      else if (reply.id) messages.push(...this.answered(reply));
      else if (!reply.push) answer = '{}'; // the server's ping
    }
    return { messages, answer };
  }

  nativeClose(code: number): number {
    return NATIVE_CLOSE_OF[code] ?? code;
  }

  private answered(reply: Reply): ServerMessage[] {
    const pending = this.pending.get(reply.id!);
    this.pending.delete(reply.id!);
    if (!pending) return [];
    if (reply.error) return [this.error(pending, reply.error)];
    const result = (reply[pending.kind === 'echo' ? 'ping' : pending.kind] ?? {}) as Record<string, unknown>;
    switch (pending.kind) {
      case 'connect': {
        const client = String(result.client);
        // The client id is `<replica>-<n>`.
        const replica = client.replace(/-\d+$/, '');
        return [
          { type: 'hello', replica, connection: client, pingIntervalMs: Number(result.ping) * 1000, maxMessageBytes: 0, ...expiry(result) },
        ];
      }
      case 'refresh':
        return [{ type: 'refreshed', expiresAt: expiry(result).expiresAt ?? 0 }];
      case 'echo':
        return [{ type: 'echo', id: pending.echo, ts: pending.ts }];
      case 'publish':
        return [
          {
            type: 'published',
            topic: pending.topic,
            id: pending.publication,
            ...(typeof result.offset === 'number' ? { offset: result.offset } : {}),
          },
        ];
      case 'subscribe':
        return this.subscribed(pending.topic, pending.recovering, result);
    }
  }

  private subscribed(topic: string, recovering: boolean, result: Record<string, unknown>): ServerMessage[] {
    const epoch = typeof result.epoch === 'string' ? result.epoch : undefined;
    if (epoch) this.epochs.set(topic, epoch);
    if (result.delta === true) this.deltaTopics.add(topic);
    const subscribed: ServerMessage = {
      type: 'subscribed',
      topic,
      ...(recovering ? { recovered: result.recovered === true } : {}),
      ...(epoch ? { offset: Number(result.offset ?? 0), epoch } : {}),
    };
    const replayed = ((result.publications ?? []) as CentrifugePublication[]).map((p) => this.notification(topic, p));
    return [subscribed, ...replayed];
  }

  private notification(topic: string, pub: CentrifugePublication): ServerMessage {
    const data = pub.data as { ts?: number } | null;
    const sentAt = typeof data?.ts === 'number' ? data.ts : Number(pub.tags?.ts);
    const text = !this.deltaTopics.has(topic) ? undefined : pub.delta ? { delta: String(pub.data) } : { json: String(pub.data) };
    return {
      type: 'notification',
      topic,
      data: text ? undefined : pub.data,
      ...text,
      replica: pub.tags?.replica ?? '',
      ...(pub.tags?.id === undefined ? {} : { id: pub.tags.id }),
      ...(Number.isFinite(sentAt) ? { ts: sentAt } : {}),
      ...(pub.offset === undefined ? {} : { offset: pub.offset, epoch: this.epochs.get(topic) }),
    };
  }

  /** A refused command, in the native codes: a temporary one on publish is the broker's refusal, retried. */
  private error(pending: Pending, error: { code: number; message: string; temporary?: boolean }): ServerMessage {
    const code = pending.kind === 'publish' && error.temporary ? BROKER_ERROR_CODE : `centrifuge_${error.code}`;
    return {
      type: 'error',
      code: code as typeof BROKER_ERROR_CODE,
      message: error.message,
      ...(pending.kind === 'publish' ? { id: pending.publication } : {}),
    };
  }
}

/** `expires` and `ttl` (seconds) as the native expiry instant. */
function expiry(result: Record<string, unknown>): { expiresAt?: number } {
  return result.expires === true && typeof result.ttl === 'number' ? { expiresAt: Date.now() + result.ttl * 1000 } : {};
}
