import { z } from 'zod';
import { webhookEventNames, webhookSequence } from './webhook-examples';

/**
 * The load profile: what the load client does. It lives here, beside the topology,
 * because the stack passes it to the load-client job and the client validates the same schema
 * for flags, environment variables and JSON files.
 */
const count = z.number().int().min(0);
const ms = z.number().int().min(0);

export const stageSchema = z
  .object({
    /** Connections open at the end of this stage (lower than the last stage ramps down). */
    connections: count,
    /** Opening (or closing) rate while ramping, connections per second. */
    rampRate: z.number().positive().max(100_000),
    /** How long to hold the reached level before the next stage. */
    holdMs: ms,
  })
  .strict();

export const WEBHOOK_SOURCE = 'github-webhooks';

/**
 * What the load client sends: synthetic payloads of a fixed or uniform size, or real GitHub
 * webhook payloads (`@octokit/webhooks-examples`) of the events named, which each publisher sends
 * to its own topic in order (shared/webhook-examples.ts), and echoes as text.
 */
export const payloadSchema = z.union([
  z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('fixed'), bytes: z.number().int().min(0) }).strict(),
    z
      .object({ kind: z.literal('uniform'), min: z.number().int().min(0), max: z.number().int().min(0) })
      .strict()
      .refine((p) => p.max >= p.min, { message: 'max must be at least min', path: ['max'] }),
  ]),
  z
    .object({
      source: z.literal(WEBHOOK_SOURCE),
      events: z.array(z.string()).min(1),
    })
    .strict()
    .superRefine((p, ctx) => {
      const known = new Set(webhookEventNames());
      p.events.forEach((event, i) => {
        if (!known.has(event))
          ctx.addIssue({
            code: 'custom',
            path: ['events', i],
            message: `${event} is not an event with examples (e.g. push, issues, pull_request)`,
          });
      });
    }),
]);
export type PayloadSpec = z.infer<typeof payloadSchema>;

/** The largest payload a spec sends, in bytes (a webhook payload's JSON text). */
export function largestPayloadBytes(spec: PayloadSpec): number {
  if ('source' in spec) return Math.max(...webhookSequence(spec.events).map((e) => Buffer.byteLength(e.text)));
  return spec.kind === 'fixed' ? spec.bytes : spec.max;
}

export const reconnectSchema = z
  .object({
    enabled: z.boolean().default(true),
    /** Exponential backoff with full jitter: delay = random(0, min(max, initial * 2^attempt)). */
    initialDelayMs: ms.default(500),
    maxDelayMs: ms.default(20_000),
  })
  .strict()
  .refine((r) => r.maxDelayMs >= r.initialDelayMs, {
    message: 'maxDelayMs must be at least initialDelayMs',
    path: ['maxDelayMs'],
  });

/**
 * The default profile's one stage: 1,000 connections ramped at 250/s, held 20 s. The rate is what
 * this project's reference machine (2 cores, nginx + TLS, 3 replicas, nats-server and the client
 * all on it) opens while every measurement stays the system's (docs/benchmarks/default-run.md):
 * at 1,000/s the client's own queue dominated connect and RTT times.
 */
export const DEFAULT_STAGE = { connections: 1000, rampRate: 250, holdMs: 20_000 } as const;

/**
 * One stage that ramps to `connections` at `rampRate` and holds for the rest of `durationMs`
 * (a run of that length in all). The CLI's --connections/--duration and the local runner use it.
 */
export function singleStage(connections: number, durationMs: number, rampRate: number = DEFAULT_STAGE.rampRate): Stage {
  const rampMs = Math.ceil((connections / rampRate) * 1000);
  return { connections, rampRate, holdMs: Math.max(0, durationMs - rampMs) };
}

const DEFAULT_MAX_DURATION_MS = 300_000;

/**
 * The hard time limit of a run asked for `durationMs` (--duration): twice the run plus a minute
 * for the ramp-down and the report, never under the schema's default. One rule for the load
 * client's CLI and the local runner.
 */
export function hardTimeLimitMs(durationMs: number): number {
  return Math.max(DEFAULT_MAX_DURATION_MS, durationMs * 2 + 60_000);
}

/** A virtual user's token lifetime unless told (the local runner's --token-ttl too). */
export const DEFAULT_TOKEN_TTL_MS = 600_000;

/** How a native connection sends its token unless told (LoadProfile's `tokens.via`, the local runner's --token-in). */
export const DEFAULT_TOKEN_VIA = 'header';

/** Where the virtual users' tokens come from (LoadProfile's `tokens`). */
export const loadTokensSchema = z
  .object({
    issuer: z.string().url(),
    /** The file holding the provider's client secret (never the secret itself: profiles are logged and stored). */
    secretFile: z.string().min(1),
    /** Each token's lifetime. */
    ttlMs: z.number().int().min(2_000).max(86_400_000).default(DEFAULT_TOKEN_TTL_MS),
    /**
     * How a native connection sends its token: in the upgrade's `Authorization: Bearer` header
     * (as a backend or an app can; hello follows the 101), or in the first message (as a browser
     * must; one more round trip). Centrifugo's protocol always sends it in its connect command.
     * @default DEFAULT_TOKEN_VIA
     */
    via: z.enum(['header', 'message']).default(DEFAULT_TOKEN_VIA),
  })
  .strict();

/** How a native connection sends its token (LoadProfile's `tokens.via`). */
export type TokenVia = z.infer<typeof loadTokensSchema>['via'];

export const loadProfileSchema = z
  .object({
    stages: z
      .array(stageSchema)
      .min(1)
      .default([{ ...DEFAULT_STAGE }]),
    /** Fraction of connections that send echo messages; the rest only listen. */
    senderFraction: z.number().min(0).max(1).default(0.2),
    /** Echo messages per second per sender. */
    messageRate: z.number().min(0).max(10_000).default(1),
    /** Spacing of sends: Poisson arrivals (exponential gaps) or a fixed interval. */
    arrival: z.enum(['poisson', 'fixed']).default('poisson'),
    payload: payloadSchema.default({ kind: 'fixed', bytes: 128 }),
    /** Topics the connections subscribe to (round-robin over the topics). */
    topics: z.number().int().min(0).max(10_000).default(10),
    /** Notifications per second published (by the client, through the server) across all topics. */
    publishRate: z.number().min(0).max(100_000).default(2),
    compression: z.boolean().default(false),
    /**
     * Subscribe asking for fossil deltas (`delta: 'fossil'`): on topics the server has them for
     * (server.deltaTopics), each notification's data is rebuilt from the previous one's and checked.
     */
    delta: z.boolean().default(false),
    /**
     * The client protocol: the project's own at server.path, or Centrifugo's at /connection/websocket
     * (the load client's own lean implementation of it, app/src/client/centrifuge-wire.ts).
     */
    protocol: z.enum(['native', 'centrifuge']).default('native'),
    /**
     * After the last stage, publishing stops and connections stay open until no notification has
     * arrived for a second, at most this long, so what is in flight arrives before the delivery
     * account is settled (client/delivery.ts).
     */
    settleMs: ms.max(60_000).default(10_000),
    reconnect: reconnectSchema.default({ enabled: true, initialDelayMs: 500, maxDelayMs: 20_000 }),
    /** Hard limit for the whole run, so a load job always ends. */
    maxDurationMs: ms.min(1000).default(DEFAULT_MAX_DURATION_MS),
    /**
     * Handshakes in flight at once, over all load processes (reconnects included): the ramp opens
     * at its rate only as far as the target completes them, so connect time measures the target,
     * not a queue inside the client. The report shows the asked and achieved opening rates.
     */
    maxHandshakesInFlight: count.min(1).max(100_000).default(64),
    /** Handshake timeout per connection. */
    connectTimeoutMs: ms.min(100).default(10_000),
    /** Local source addresses to spread connections over (loopback only); empty: the OS picks. */
    sourceAddresses: z.array(z.ipv4()).default([]),
    /**
     * Query parameter carrying each simulated client's stable id (?client=17), for balancing
     * that hashes on a key (nginx `hash $arg_client`); absent: no query.
     */
    keyParam: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,32}$/)
      .optional(),
    /**
     * Tokens for the virtual users, when the target runs with auth: each gets its own from this
     * OpenID provider (the development IdP's dev-user grant, `sub` vu-<index>, Keycloak-style
     * roles), connects with it, and refreshes it when the server warns. Absent: no tokens.
     */
    tokens: loadTokensSchema.optional(),
    /**
     * Publish as a backend does: POST /api/publish at the target's own origin (through the proxy
     * with proxy.publishApi), with the publish API's bearer key read from this file. Absent: each
     * sender publishes over its WebSocket.
     */
    publishApi: z
      .object({ keyFile: z.string().min(1) })
      .strict()
      .optional(),
    /** Worker processes; 0 picks one per ~15,000 connections. */
    workers: z.number().int().min(0).max(64).default(0),
    /**
     * Pass/fail rules such as "rtt.p99<50" or "errors==0"; any breach makes the exit code non-zero.
     * By default a run passes only if nothing failed and no connection was cut (closes caused by
     * an injected fault are counted apart, as closes.fault).
     */
    thresholds: z.array(z.string().min(3)).default(['errors==0', 'closes.unexpected==0']),
    /**
     * A run whose generator was the bottleneck is INCONCLUSIVE (exit 4) even when its thresholds
     * pass; true judges it by the thresholds alone (PASS), knowingly.
     */
    acceptUntrustworthy: z.boolean().default(false),
  })
  .strict();

export type LoadProfile = z.infer<typeof loadProfileSchema>;
export type LoadProfileInput = z.input<typeof loadProfileSchema>;
export type Stage = z.infer<typeof stageSchema>;

/** The largest number of connections any stage asks for. */
export function peakConnections(profile: Pick<LoadProfile, 'stages'>): number {
  return Math.max(...profile.stages.map((s) => s.connections));
}

/** The fastest opening rate of any stage (handshakes per second). */
export function peakRampRate(profile: Pick<LoadProfile, 'stages'>): number {
  return Math.max(...profile.stages.map((s) => s.rampRate));
}
