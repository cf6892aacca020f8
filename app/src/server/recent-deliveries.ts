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
 * skip, or the newest offset when a topic was forgotten) or, once its window is full, after the
 * newest offset it dropped.
 */
export class RecentDeliveries<D extends { offset: number }> {
  private readonly byTopic = new Map<string, { items: D[]; coveredAfter: number }>();
  /** Topics first seen now are gap-free after this. */
  private floor: number;
  private newest: number;

  constructor(
    startAfter: number,
    private readonly perTopic: number,
    private readonly maxTopics: number,
  ) {
    this.floor = startAfter;
    this.newest = startAfter;
  }

  /** A delivery, in stream order. */
  add(topic: string, d: D): void {
    if (d.offset !== this.newest + 1) {
      // Offsets skipped (dropped by the stream before this replica read them): nothing before is vouched for.
      this.floor = d.offset - 1;
      for (const e of this.byTopic.values()) e.coveredAfter = Math.max(e.coveredAfter, this.floor);
    }
    let entry = this.byTopic.get(topic);
    if (!entry) {
      if (this.byTopic.size >= this.maxTopics) {
        // Forget the oldest topic; a topic seen again from here on is known only from now.
        this.byTopic.delete(this.byTopic.keys().next().value!);
        this.floor = this.newest;
      }
      entry = { items: [], coveredAfter: this.floor };
      this.byTopic.set(topic, entry);
    }
    entry.items.push(d);
    if (entry.items.length > this.perTopic) entry.coveredAfter = Math.max(entry.coveredAfter, entry.items.shift()!.offset);
    this.newest = d.offset;
  }

  /** Every delivery of `topic` after `afterOffset`, or undefined when memory does not reach back that far. */
  after(topic: string, afterOffset: number): D[] | undefined {
    const entry = this.byTopic.get(topic);
    if (afterOffset < (entry?.coveredAfter ?? this.floor)) return undefined;
    return (entry?.items ?? []).filter((d) => d.offset > afterOffset);
  }
}
