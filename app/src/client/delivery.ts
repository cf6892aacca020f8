/**
 * Delivery accounting through a broker: which stored publications each subscriber was owed, and
 * which it got. Offsets are stream positions shared by all topics (server/broker.ts), so a
 * subscriber cannot see a gap by itself: the publishers' acknowledged offsets, from every
 * process, say what exists.
 *
 * A subscriber owes nothing before its window: a window opens at the offset its `subscribed`
 * answer names (every later publication of the topic reaches it, live or replayed), and closes
 * when the user retires during the run (at its last offset) or when the history could not cover a
 * reconnect (`recovered: false`: a new window opens where the subscription continues). Windows
 * still open at the end of the run owe everything acknowledged: publishing stops a settle period
 * before the subscribers leave.
 */

/** One process's ledger, as it travels to the coordinator (final snapshot only). */
export interface SerializedLedger {
  /** topic → acknowledged offsets (each once, however often it was retried) */
  acknowledged: Record<string, number[]>;
  /** topic → [offset, subscribers that received it inside their window] */
  received: Record<string, [number, number][]>;
  /** topic → [start (exclusive), end (inclusive) or null while open at the end] */
  windows: Record<string, [number, number | null][]>;
}

/** What the report shows: `lost` is owed but never received. */
export interface DeliveryAccount {
  /** Subscriptions that started owing at an offset: none without a broker. */
  windows: number;
  /** Publications the broker acknowledged. */
  published: number;
  /** Deliveries owed: each acknowledged publication times the subscribers whose window held it. */
  expected: number;
  /** Owed deliveries that arrived (each subscriber's first copy). */
  received: number;
  lost: number;
}

export interface Window {
  readonly topic: string;
  readonly start: number;
  end?: number | null;
}

/** The map's value for `key`, made and stored the first time. */
function entry<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) map.set(key, (value = make()));
  return value;
}

export class DeliveryLedger {
  private readonly acknowledged = new Map<string, Set<number>>();
  private readonly received = new Map<string, Map<number, number>>();
  private readonly windows: Window[] = [];

  /** A publication of this process was stored at `offset`. */
  acknowledge(topic: string, offset: number): void {
    entry(this.acknowledged, topic, () => new Set<number>()).add(offset);
  }

  /** A subscription is gap-free after `start` from now on. */
  open(topic: string, start: number): Window {
    const window: Window = { topic, start };
    this.windows.push(window);
    return window;
  }

  /** The window's subscriber got `offset` for the first time. Offsets at or before its start are not owed, so not counted. */
  receive(window: Window, offset: number): void {
    if (offset <= window.start || (typeof window.end === 'number' && offset > window.end)) return;
    const counts = entry(this.received, window.topic, () => new Map<number, number>());
    counts.set(offset, (counts.get(offset) ?? 0) + 1);
  }

  /** Owes nothing after `end`; `null`: owes everything acknowledged (the run's end). */
  close(window: Window, end: number | null): void {
    if (window.end === undefined) window.end = end;
  }

  serialize(): SerializedLedger {
    const windows: SerializedLedger['windows'] = {};
    for (const w of this.windows) (windows[w.topic] ??= []).push([w.start, w.end ?? null]);
    return {
      acknowledged: Object.fromEntries([...this.acknowledged].map(([t, s]) => [t, [...s]])),
      received: Object.fromEntries([...this.received].map(([t, m]) => [t, [...m]])),
      windows,
    };
  }
}

/** Merges every process's ledger and settles the account. */
export function settleDeliveries(ledgers: SerializedLedger[]): DeliveryAccount {
  const acknowledged = new Map<string, Set<number>>();
  for (const l of ledgers)
    for (const [topic, offsets] of Object.entries(l.acknowledged)) {
      const set = entry(acknowledged, topic, () => new Set<number>());
      for (const o of offsets) set.add(o);
    }
  let windows = 0;
  for (const l of ledgers) for (const list of Object.values(l.windows)) windows += list.length;
  let published = 0;
  let expected = 0;
  let received = 0;
  for (const [topic, set] of acknowledged) {
    const sorted = Float64Array.from(set).sort();
    published += sorted.length;
    // Acknowledged offsets up to and including x.
    const upTo = (x: number) => {
      let lo = 0;
      let hi = sorted.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (sorted[mid] <= x) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    };
    for (const l of ledgers) {
      for (const [start, end] of l.windows[topic] ?? []) expected += (end === null ? sorted.length : upTo(end)) - upTo(start);
      // Copies of publications nobody acknowledged (an ack lost with its connection) are not owed.
      for (const [offset, count] of l.received[topic] ?? []) if (set.has(offset)) received += count;
    }
  }
  return { windows, published, expected, received, lost: Math.max(0, expected - received) };
}
