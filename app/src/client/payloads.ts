import type { PayloadSpec } from '../shared/profile';
import { webhookSequence, type WebhookExample } from '../shared/webhook-examples';

/** A publication's data and, for real payloads, the topic it belongs on. */
export interface Publication {
  readonly data: unknown;
  /** The publisher's own topic (its repository's); absent: any topic. */
  readonly ownTopic: boolean;
}

/** What the virtual users send: echo payloads and publications' data (profile `payload`). */
export interface PayloadSource {
  /** The `n`th echo payload of user `user`. */
  echo(user: number, n: number): string;
  /** The data of user `user`'s `n`th publication. */
  publication(user: number, n: number): Publication;
  /**
   * Whether a notification's data is a publication as sent, compared as JSON where it can be known
   * (a webhook payload is looked up by its event and example); undefined: nothing to compare.
   */
  matches(data: unknown): boolean | undefined;
}

/** Synthetic payloads: `x` repeated, of a fixed size or uniformly between two. */
class SyntheticPayloads implements PayloadSource {
  private readonly texts = new Map<number, string>();

  constructor(private readonly spec: Extract<PayloadSpec, { kind: string }>) {}

  echo(): string {
    const { spec } = this;
    const bytes = spec.kind === 'fixed' ? spec.bytes : spec.min + Math.floor(Math.random() * (spec.max - spec.min + 1));
    let text = this.texts.get(bytes);
    if (text === undefined) this.texts.set(bytes, (text = 'x'.repeat(bytes)));
    return text;
  }

  publication(user: number): Publication {
    return { data: { from: user }, ownTopic: false };
  }

  matches(): undefined {
    return undefined;
  }
}

/**
 * Real GitHub webhook payloads: each publisher is one repository, sending the sequence in order
 * (from its own starting point, so publishers are not in lockstep) to its own topic, where
 * consecutive events give deltas something to work with.
 */
class WebhookPayloads implements PayloadSource {
  private readonly sequence: WebhookExample[];
  private readonly byExample = new Map<string, string>();

  constructor(events: readonly string[]) {
    this.sequence = webhookSequence(events);
    for (const e of this.sequence) this.byExample.set(`${e.event}#${e.example}`, e.text);
  }

  private at(user: number, n: number): WebhookExample {
    return this.sequence[(user + n) % this.sequence.length];
  }

  echo(user: number, n: number): string {
    return this.at(user, n).text;
  }

  publication(user: number, n: number): Publication {
    const { event, example, payload } = this.at(user, n);
    return { data: { from: user, event, example, payload }, ownTopic: true };
  }

  matches(data: unknown): boolean {
    const d = data as { event?: unknown; example?: unknown; payload?: unknown } | null;
    const text = this.byExample.get(`${d?.event}#${d?.example}`);
    return text !== undefined && JSON.stringify(d?.payload) === text;
  }
}

export function payloadSource(spec: PayloadSpec): PayloadSource {
  return 'source' in spec ? new WebhookPayloads(spec.events) : new SyntheticPayloads(spec);
}
