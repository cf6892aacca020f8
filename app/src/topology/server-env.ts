import type { z } from 'zod';
import { ConfigError } from '../shared/errors';
import { authSchema, type AuthConfig } from './auth';
import { brokerSchema, serverSchema, streamReplicas, type BrokerConfig, type ServerConfig, type Topology } from './schema';

/**
 * The server's settings travel as environment variables (containers, local processes).
 * These tables are the only place the names are written; both directions use them.
 */
export const SERVER_ENV = {
  port: 'WS_PORT',
  path: 'WS_PATH',
  centrifuge: 'WS_CENTRIFUGE',
  pingIntervalMs: 'WS_PING_INTERVAL_MS',
  pongTimeoutMs: 'WS_PONG_TIMEOUT_MS',
  writeTimeoutMs: 'WS_WRITE_TIMEOUT_MS',
  maxMessageBytes: 'WS_MAX_MESSAGE_BYTES',
  compression: 'WS_COMPRESSION',
  deflate: 'WS_DEFLATE',
  inflateIdleMs: 'WS_INFLATE_IDLE_MS',
  deltaTopics: 'WS_DELTA_TOPICS',
  sendBufferLimitBytes: 'WS_SEND_BUFFER_LIMIT_BYTES',
  writeCoalescing: 'WS_WRITE_COALESCING',
  maxConnections: 'WS_MAX_CONNECTIONS',
  maxSubscriptionsPerConnection: 'WS_MAX_SUBSCRIPTIONS_PER_CONNECTION',
  maxSubscriptionsPerReplica: 'WS_MAX_SUBSCRIPTIONS_PER_REPLICA',
  clientPublish: 'WS_CLIENT_PUBLISH',
  allowedOrigins: 'WS_ALLOWED_ORIGINS',
  drainWindowMs: 'WS_DRAIN_WINDOW_MS',
  drainDeadlineMs: 'WS_DRAIN_DEADLINE_MS',
  logLevel: 'WS_LOG_LEVEL',
  apiKeyFile: 'WS_API_KEY_FILE',
} as const satisfies Record<keyof ServerConfig, string>;

/**
 * The file holding the control endpoints' secret (tls.controlKey), as the replica reads it. Set
 * by each target, never by hand; without it a replica's control endpoints are off.
 */
export const CONTROL_KEY_ENV = 'WS_CONTROL_KEY_FILE';

/** The broker's settings, as the replicas read them (no WS_BROKER_URLS: no broker). */
export const BROKER_ENV = {
  urls: 'WS_BROKER_URLS',
  stream: 'WS_BROKER_STREAM',
  subjectPrefix: 'WS_BROKER_SUBJECT_PREFIX',
  historyPerTopic: 'WS_BROKER_HISTORY_PER_TOPIC',
  historyMaxAgeMs: 'WS_BROKER_HISTORY_MAX_AGE_MS',
  dedupeWindowMs: 'WS_BROKER_DEDUPE_WINDOW_MS',
  storage: 'WS_BROKER_STORAGE',
  recentBytes: 'WS_BROKER_RECENT_BYTES',
  streamReplicas: 'WS_BROKER_STREAM_REPLICAS',
} as const satisfies Record<Exclude<keyof BrokerConfig, 'enabled' | 'monitoringPort'>, string>; // the monitoring port is the broker container's, not the replicas'

/** Who may connect (auth.ts), as the replicas read it; the grants travel as JSON. */
export const AUTH_ENV = {
  mode: 'WS_AUTH_MODE',
  issuer: 'WS_AUTH_ISSUER',
  jwksUri: 'WS_AUTH_JWKS_URI',
  audience: 'WS_AUTH_AUDIENCE',
  algorithms: 'WS_AUTH_ALGORITHMS',
  clockSkewMs: 'WS_AUTH_CLOCK_SKEW_MS',
  connectTimeoutMs: 'WS_AUTH_CONNECT_TIMEOUT_MS',
  refreshAheadMs: 'WS_AUTH_REFRESH_AHEAD_MS',
  expiryGraceMs: 'WS_AUTH_EXPIRY_GRACE_MS',
  maxTokenBytes: 'WS_AUTH_MAX_TOKEN_BYTES',
  revocationTtlMs: 'WS_AUTH_REVOCATION_TTL_MS',
  tokenGrantsClaim: 'WS_AUTH_TOKEN_GRANTS_CLAIM',
  grants: 'WS_AUTH_GRANTS',
  anonymous: 'WS_AUTH_ANONYMOUS',
} as const satisfies Record<keyof AuthConfig, string>;

/**
 * The broker user a replica connects as and the file holding its password (components/broker-auth.ts).
 * Set by each target, never by hand; without them it connects without credentials.
 */
export const BROKER_CREDENTIALS_ENV = { user: 'WS_BROKER_USER', passwordFile: 'WS_BROKER_PASSWORD_FILE' } as const;

/** Names the replica in its hello message and metrics. */
export const REPLICA_ID_ENV = 'WS_REPLICA_ID';
/**
 * The bind address. Not a topology field: in a container the replica listens on every address
 * (unset); only the local runner binds loopback.
 */
export const HOST_ENV = 'WS_HOST';

type Table = Record<string, string>;

/** Values → variables by a table (lists comma-separated; an absent optional value, no variable). */
function toEnv(values: Record<string, unknown>, table: Table): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, name] of Object.entries(table)) {
    const value = values[key];
    if (value === undefined) continue;
    // Lists of objects (auth.grants) as JSON; lists of names comma-separated.
    env[name] = Array.isArray(value) ? (value.some((v) => typeof v === 'object') ? JSON.stringify(value) : value.join(',')) : String(value);
  }
  return env;
}

type FieldDef = { def: { type: string; innerType?: FieldDef } };

/** A field's own type, under its default or optional wrapper. */
function kindOf(field: FieldDef): string {
  return field.def.innerType ? kindOf(field.def.innerType) : field.def.type;
}

/**
 * Variables → validated values by a table; unset variables take the schema's defaults. Each
 * variable is typed after its field's type (a list, a number, or text), under any default or
 * optional wrapper; a bad value is a ConfigError naming the variable.
 */
export function fromEnv<S extends z.ZodObject>(
  schema: S,
  table: Table,
  env: Record<string, string | undefined>,
  extra: Record<string, unknown> = {},
  source = 'server environment',
): z.infer<S> {
  const raw: Record<string, unknown> = { ...extra };
  for (const [key, name] of Object.entries(table)) {
    const text = env[name];
    if (text === undefined || text === '') continue;
    const kind = kindOf(schema.shape[key] as unknown as FieldDef);
    raw[key] =
      kind === 'array' && text.startsWith('[')
        ? parseJsonList(text)
        : kind === 'array'
          ? text
              .split(',')
              .map((s) => s.trim())
              .filter(Boolean)
          : kind === 'number'
            ? Number(text)
            : kind === 'boolean' && (text === 'true' || text === 'false')
              ? text === 'true'
              : text;
  }
  const result = schema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(
      source,
      result.error.issues.map((i) => ({ field: table[String(i.path[0])] ?? String(i.path[0]), rule: i.message })),
    );
  }
  return result.data;
}

/** A JSON list from a variable; anything else is left for the schema to refuse. */
function parseJsonList(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The auth section's variables (the mode alone when it is `none`). */
export function toAuthEnv(auth: AuthConfig): Record<string, string> {
  return auth.mode === 'none' ? { [AUTH_ENV.mode]: 'none' } : toEnv(auth, AUTH_ENV);
}

/** The auth settings a replica was given; unset, `jwt` (secure by default: it then needs WS_AUTH_ISSUER or WS_AUTH_JWKS_URI). */
export function fromAuthEnv(env: Record<string, string | undefined>): AuthConfig {
  return fromEnv(authSchema, AUTH_ENV, env);
}

export function toServerEnv(server: ServerConfig, replicaId: string, options: { host?: string } = {}): Record<string, string> {
  return { [REPLICA_ID_ENV]: replicaId, ...(options.host ? { [HOST_ENV]: options.host } : {}), ...toEnv(server, SERVER_ENV) };
}

/** Reads the settings back; unset variables take the topology defaults. */
export function fromServerEnv(env: Record<string, string | undefined>): ServerConfig & { replicaId: string; host?: string } {
  const settings = fromEnv(serverSchema, SERVER_ENV, env);
  const host = env[HOST_ENV];
  return { ...settings, replicaId: env[REPLICA_ID_ENV] || `pid-${process.pid}`, ...(host ? { host } : {}) };
}

/** The broker's variables, or none when the topology runs without one. */
export function toBrokerEnv(topology: Pick<Topology, 'broker' | 'target' | 'swarm'>): Record<string, string> {
  const { broker } = topology;
  return broker.enabled ? toEnv({ ...broker, streamReplicas: streamReplicas(topology) }, BROKER_ENV) : {};
}

/** The broker settings a replica was given, or undefined when it runs without one. */
export function fromBrokerEnv(env: Record<string, string | undefined>): BrokerConfig | undefined {
  return env[BROKER_ENV.urls] ? fromEnv(brokerSchema, BROKER_ENV, env, { enabled: true }) : undefined;
}
