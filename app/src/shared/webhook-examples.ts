import { readFileSync } from 'node:fs';

/** One real GitHub webhook delivery from `@octokit/webhooks-examples` (api.github.com). */
export interface WebhookExample {
  readonly event: string;
  /** Its index among its event's examples. */
  readonly example: number;
  readonly payload: unknown;
  /** The payload's JSON text. */
  readonly text: string;
}

interface Definition {
  name: string;
  examples: unknown[];
}

let definitions: Definition[] | undefined;

/** The package's examples (4 MB of JSON), read once when first asked for. */
function load(): Definition[] {
  definitions ??= JSON.parse(readFileSync(require.resolve('@octokit/webhooks-examples'), 'utf8')) as Definition[];
  return definitions;
}

/** Every event the package has examples of. */
export function webhookEventNames(): string[] {
  return load()
    .filter((d) => d.examples.length > 0)
    .map((d) => d.name);
}

/**
 * The examples of `events` in the order one repository's activity would interleave them: the
 * first example of each event in the order given, then the second of each, and so on, until
 * every example of every event is in.
 */
export function webhookSequence(events: readonly string[]): WebhookExample[] {
  const byName = new Map(load().map((d) => [d.name, d.examples]));
  const lists = events.map((event) => ({ event, examples: byName.get(event) ?? [] }));
  const longest = Math.max(0, ...lists.map((l) => l.examples.length));
  const out: WebhookExample[] = [];
  for (let i = 0; i < longest; i++) {
    for (const { event, examples } of lists)
      if (i < examples.length) out.push({ event, example: i, payload: examples[i], text: JSON.stringify(examples[i]) });
  }
  return out;
}
