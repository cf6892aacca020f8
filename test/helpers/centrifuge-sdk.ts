import { Centrifuge, type Subscription } from 'centrifuge';
import WebSocket from 'ws';

/** What an SDK object emitted, in order: the event's name and its context. */
export type Seen = { event: string; ctx: Record<string, unknown> };

/** Records the events of a Centrifuge client or subscription, and waits for one that matches. */
export class Recorder {
  readonly seen: Seen[] = [];
  private waiters: Array<{ test: (s: Seen) => boolean; resolve: (s: Seen) => void }> = [];

  constructor(target: Centrifuge | Subscription, events: string[]) {
    for (const event of events) {
      (target as unknown as { on(e: string, f: (ctx: Record<string, unknown>) => void): void }).on(event, (ctx) => {
        const seen = { event, ctx: ctx ?? {} };
        this.seen.push(seen);
        const due = this.waiters.filter((w) => w.test(seen));
        this.waiters = this.waiters.filter((w) => !due.includes(w));
        for (const w of due) w.resolve(seen);
      });
    }
  }

  /** The first event (already seen, or to come) named `event` and passing `test`; rejects after `timeoutMs`. */
  wait(event: string, test: (ctx: Record<string, unknown>) => boolean = () => true, timeoutMs = 15_000, from = 0): Promise<Seen> {
    const match = (s: Seen) => s.event === event && test(s.ctx);
    const found = this.seen.slice(from).find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms; seen: ${this.names()}`)), timeoutMs);
      this.waiters.push({
        test: match,
        resolve: (s) => {
          clearTimeout(timer);
          resolve(s);
        },
      });
    });
  }

  count(event: string): number {
    return this.seen.filter((s) => s.event === event).length;
  }

  names(): string {
    const detail = (c: Record<string, unknown>) => (c.code === undefined ? '' : ` (${c.code} ${c.reason ?? ''})`);
    return this.seen.map((s) => `${s.event}${detail(s.ctx)}`).join(', ');
  }
}

/**
 * The SDK as an application uses it in Node: `ws` as its WebSocket, trusting the run's CA (the
 * SDK constructs its WebSocket with the URL alone, so the CA comes in through a subclass).
 */
export function sdkClient(url: string, ca: Buffer, options: { getToken?: () => Promise<string> } = {}): Centrifuge {
  class TrustingWebSocket extends WebSocket {
    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols, { ca });
    }
  }
  return new Centrifuge(url, { websocket: TrustingWebSocket, minReconnectDelay: 100, maxReconnectDelay: 1_000, ...options });
}
