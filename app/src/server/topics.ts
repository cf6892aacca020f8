/** Topic subscriptions of this replica: topic → subscribers. Fan-out is per replica. */
export class TopicRegistry<S> {
  private readonly topics = new Map<string, Set<S>>();
  private count = 0;

  subscribe(topic: string, subscriber: S): boolean {
    let set = this.topics.get(topic);
    if (!set) this.topics.set(topic, (set = new Set()));
    if (set.has(subscriber)) return false;
    set.add(subscriber);
    this.count++;
    return true;
  }

  unsubscribe(topic: string, subscriber: S): boolean {
    const set = this.topics.get(topic);
    if (!set?.delete(subscriber)) return false;
    if (set.size === 0) this.topics.delete(topic);
    this.count--;
    return true;
  }

  subscribers(topic: string): ReadonlySet<S> {
    return this.topics.get(topic) ?? new Set();
  }

  /** Total subscriptions across topics. */
  get size(): number {
    return this.count;
  }
}

/** NATS subject matching, by names: `*` is one name, a last `>` one or more. */
export function topicMatches(pattern: readonly string[], names: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === '>') return names.length > i;
    if (i >= names.length || (pattern[i] !== '*' && pattern[i] !== names[i])) return false;
  }
  return pattern.length === names.length;
}
