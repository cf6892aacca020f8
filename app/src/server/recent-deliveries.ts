/**
 * What this replica's broker consumer delivered lately, per topic. A recovery whose gap lies
 * inside it is answered from memory instead of from a JetStream consumer of its own (five
 * requests to the broker each): after a proxy failover every client recovers at once, and the
 * broker round trips, not the replay, were what the storm cost.
 *
 * The consumer delivers the offsets after the replica's start in order, but not always all of
 * them: the stream's limits may drop a message before the consumer reads it. Offsets count across
 * all topics, so a skipped one could have been any topic's: after a skip, no topic is vouched for
 * before it. So a topic's window is gap-free after `floor` (where the replica started, the last
 * skip, or the newest offset when a topic was forgotten) or, once something of it was dropped,
 * after the newest offset it dropped.
 *
 * Three bounds, whichever comes first: deliveries per topic, topics, and bytes in all (the stored
 * JSON's size, oldest dropped first), so memory stays bounded whatever the publishers send.
 */
export interface RecentLimits {
  readonly perTopic: number;
  readonly maxTopics: number;
  readonly maxBytes: number;
}

interface Entry<D> {
  readonly topic: string;
  readonly d: D;
  readonly bytes: number;
  /** Dropped already (by its topic's window or with its topic): the byte queue passes it over. */
  gone: boolean;
}

export class RecentDeliveries<D extends { offset: number }> {
  private readonly byTopic = new Map<string, { items: Entry<D>[]; coveredAfter: number }>();
  /** Every entry in delivery order, for the byte budget, until compacted away once gone. */
  private queue: Entry<D>[] = [];
  /** Entries before it are all gone. */
  private head = 0;
  private goneInQueue = 0;
  private held = 0;
  /** Topics first seen now are gap-free after this. */
  private floor: number;
  private newest: number;

  constructor(
    startAfter: number,
    private readonly limits: RecentLimits,
  ) {
    this.floor = startAfter;
    this.newest = startAfter;
  }

  /** Bytes of the deliveries held now. */
  get bytes(): number {
    return this.held;
  }

  /** A delivery of `bytes` stored bytes, in stream order. */
  add(topic: string, d: D, bytes: number): void {
    if (d.offset !== this.newest + 1) {
      // Offsets skipped (dropped by the stream before this replica read them): nothing before is vouched for.
      this.floor = d.offset - 1;
      for (const e of this.byTopic.values()) e.coveredAfter = Math.max(e.coveredAfter, this.floor);
    }
    this.newest = d.offset;
    if (bytes > this.limits.maxBytes) return this.forget(topic, d.offset);
    const entry = this.topicEntry(topic);
    const item: Entry<D> = { topic, d, bytes, gone: false };
    entry.items.push(item);
    this.queue.push(item);
    this.held += bytes;
    if (entry.items.length > this.limits.perTopic) this.dropOldest(entry);
    while (this.held > this.limits.maxBytes) this.dropOldestOverall();
    // Gone entries leave the queue once they are half of it: amortized O(1), and a quiet topic's
    // old delivery at the front cannot pin a busy topic's dropped ones in memory.
    if (this.goneInQueue > 1024 && this.goneInQueue * 2 > this.queue.length) {
      this.queue = this.queue.filter((e) => !e.gone);
      this.head = 0;
      this.goneInQueue = 0;
    }
  }

  /** Every delivery of `topic` after `afterOffset`, or undefined when memory does not reach back that far. */
  after(topic: string, afterOffset: number): D[] | undefined {
    const entry = this.byTopic.get(topic);
    if (afterOffset < (entry?.coveredAfter ?? this.floor) || afterOffset > this.newest) return undefined;
    return (entry?.items ?? []).filter((e) => e.d.offset > afterOffset).map((e) => e.d);
  }

  private topicEntry(topic: string): { items: Entry<D>[]; coveredAfter: number } {
    let entry = this.byTopic.get(topic);
    if (entry) return entry;
    if (this.byTopic.size >= this.limits.maxTopics) {
      // Forget the oldest topic; a topic seen again from here on is known only from now.
      const [oldest, forgotten] = this.byTopic.entries().next().value!;
      for (const item of forgotten.items) this.release(item);
      this.byTopic.delete(oldest);
      this.floor = this.newest - 1;
    }
    entry = { items: [], coveredAfter: this.floor };
    this.byTopic.set(topic, entry);
    return entry;
  }

  /** A delivery too large to keep: its topic is vouched for only after it. */
  private forget(topic: string, offset: number): void {
    const entry = this.topicEntry(topic);
    for (const item of entry.items) this.release(item);
    entry.items = [];
    entry.coveredAfter = offset;
  }

  private dropOldest(entry: { items: Entry<D>[]; coveredAfter: number }): void {
    const item = entry.items.shift()!;
    this.release(item);
    entry.coveredAfter = Math.max(entry.coveredAfter, item.d.offset);
  }

  /** Drops the oldest delivery still held: the first of its topic's window. */
  private dropOldestOverall(): void {
    while (this.queue[this.head].gone) this.head++;
    this.dropOldest(this.byTopic.get(this.queue[this.head].topic)!);
  }

  private release(item: Entry<D>): void {
    item.gone = true;
    this.goneInQueue++;
    this.held -= item.bytes;
  }
}
