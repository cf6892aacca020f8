import { isUtf8 } from 'node:buffer';
import { createDelta } from 'fossil-delta';
import type { ServerMessage } from '../shared/protocol';
import { topicMatches } from './topics';

type Notification = Extract<ServerMessage, { type: 'notification' }>;

/** A place in the broker's stream. */
export interface Position {
  readonly epoch: string;
  readonly offset: number;
}

/**
 * How one subscriber gets a publication's data: as is (`data`), as its JSON text (`json`: a
 * delta subscription's full payload, the exact bytes the next delta applies to), or as a fossil
 * delta against the subscriber's previous publication of the topic (`delta`).
 */
export type DataForm = { kind: 'data' } | { kind: 'json'; text: string } | { kind: 'delta'; text: string };

export const AS_IS: DataForm = { kind: 'data' };

/** One publication of a delta topic, as the fan-out sees it: its text and the delta against the topic's previous one. */
export class DeltaStep {
  private made?: DataForm;

  constructor(
    /** The topic's previous publication, which a subscriber must hold for the delta to apply. */
    readonly base: Position | undefined,
    private readonly baseText: Buffer | undefined,
    readonly full: Extract<DataForm, { kind: 'json' }>,
    private readonly fullBytes: Buffer,
  ) {}

  /**
   * The form for a subscriber whose last publication of the topic was at `held`: the delta when
   * it holds the base and the delta is smaller, else the full text. The delta is made once, for
   * every subscriber that can take it.
   */
  formFor(held: Position | undefined): DataForm {
    if (!held || !this.base || held.offset !== this.base.offset || held.epoch !== this.base.epoch) return this.full;
    this.made ??= this.makeDelta();
    return this.made;
  }

  private makeDelta(): DataForm {
    const delta = Buffer.from(createDelta(this.baseText!, this.fullBytes));
    // The delta travels as a JSON string whose UTF-8 bytes are the delta (what the SDK applies): a
    // copy that splits a multi-byte character leaves bytes that are no text, so those go in full.
    if (delta.length >= this.fullBytes.length || !isUtf8(delta)) return this.full;
    return { kind: 'delta', text: delta.toString('utf8') };
  }
}

/**
 * Fossil deltas for the topics the topology opts in (server.deltaTopics): each replica keeps the
 * last publication it delivered per such topic, and a subscriber that asked for deltas and holds
 * that publication gets the next one as a delta against it (Centrifugo's `delta: 'fossil'`).
 */
export class TopicDeltas {
  private readonly patterns: string[][];
  private readonly last = new Map<string, { position: Position; text: Buffer }>();

  constructor(patterns: readonly string[]) {
    this.patterns = patterns.map((p) => p.split('.'));
  }

  covers(topic: string): boolean {
    const names = topic.split('.');
    return this.patterns.some((p) => topicMatches(p, names));
  }

  /** The topic's next publication, which becomes the base of the one after it; undefined for a topic without deltas. */
  advance(n: Notification): DeltaStep | undefined {
    const position = this.positionIn(n);
    if (!position) return undefined;
    const full = fullForm(n);
    const bytes = Buffer.from(full.text);
    const previous = this.last.get(n.topic);
    this.last.set(n.topic, { position, text: bytes });
    return new DeltaStep(previous?.position, previous?.text, full, bytes);
  }

  /**
   * A publication sent outside the live fan-out (a recovery's last replayed one): the next one's
   * base, unless a later one is known. A topic without subscribers keeps none, so after a quiet
   * spell the first recovery gives the next live publication a base again.
   */
  remember(n: Notification): void {
    const position = this.positionIn(n);
    const known = this.last.get(n.topic)?.position;
    if (!position || (known && known.epoch === position.epoch && known.offset >= position.offset)) return;
    this.last.set(n.topic, { position, text: Buffer.from(fullForm(n).text) });
  }

  /** Where a publication of a delta topic sits in the stream; undefined for another topic, or one without offsets. */
  private positionIn(n: Notification): Position | undefined {
    if (n.offset === undefined || n.epoch === undefined || !this.covers(n.topic)) return undefined;
    return { epoch: n.epoch, offset: n.offset };
  }

  /** The topic has no subscriber here any more: its last publication need not be kept. */
  forget(topic: string): void {
    this.last.delete(topic);
  }
}

/** A native notification with its data in this form: `data`, or `json` or `delta` in its place. */
export function withForm(n: Notification, form: DataForm): Notification | Omit<Notification, 'data'> {
  if (form.kind === 'data') return n;
  const { data: _, ...envelope } = n;
  return { ...envelope, [form.kind]: form.text };
}

/** A publication's data as a delta subscription takes it in full: its JSON text, the base of the next delta. */
export function fullForm(n: Notification): Extract<DataForm, { kind: 'json' }> {
  return { kind: 'json', text: JSON.stringify(n.data ?? null) };
}
