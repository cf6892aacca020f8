import { ConfigError } from '../shared/errors';
import { serverSchema, type ServerConfig } from './schema';

/**
 * The server's settings travel as environment variables (containers, local processes).
 * This table is the only place the names are written; both directions use it.
 */
export const SERVER_ENV = {
  port: 'WS_PORT',
  path: 'WS_PATH',
  pingIntervalMs: 'WS_PING_INTERVAL_MS',
  pongTimeoutMs: 'WS_PONG_TIMEOUT_MS',
  writeTimeoutMs: 'WS_WRITE_TIMEOUT_MS',
  maxMessageBytes: 'WS_MAX_MESSAGE_BYTES',
  compression: 'WS_COMPRESSION',
  sendBufferLimitBytes: 'WS_SEND_BUFFER_LIMIT_BYTES',
  maxConnections: 'WS_MAX_CONNECTIONS',
  maxSubscriptionsPerConnection: 'WS_MAX_SUBSCRIPTIONS_PER_CONNECTION',
  maxSubscriptionsPerReplica: 'WS_MAX_SUBSCRIPTIONS_PER_REPLICA',
  allowedOrigins: 'WS_ALLOWED_ORIGINS',
  drainWindowMs: 'WS_DRAIN_WINDOW_MS',
  drainDeadlineMs: 'WS_DRAIN_DEADLINE_MS',
  logLevel: 'WS_LOG_LEVEL',
} as const satisfies Record<keyof ServerConfig, string>;

/** Names the replica in its hello message and metrics. */
export const REPLICA_ID_ENV = 'WS_REPLICA_ID';
/**
 * The bind address. Not a topology field: in a container the replica listens on every address
 * (unset); only the local runner binds loopback.
 */
export const HOST_ENV = 'WS_HOST';

export function toServerEnv(server: ServerConfig, replicaId: string, options: { host?: string } = {}): Record<string, string> {
  const env: Record<string, string> = { [REPLICA_ID_ENV]: replicaId, ...(options.host ? { [HOST_ENV]: options.host } : {}) };
  for (const [key, name] of Object.entries(SERVER_ENV) as [keyof ServerConfig, string][]) {
    const value = server[key];
    env[name] = Array.isArray(value) ? value.join(',') : String(value);
  }
  return env;
}

/** Reads the settings back; unset variables take the topology defaults. */
export function fromServerEnv(env: Record<string, string | undefined>): ServerConfig & { replicaId: string; host?: string } {
  const raw: Record<string, unknown> = {};
  for (const [key, name] of Object.entries(SERVER_ENV) as [keyof ServerConfig, string][]) {
    const text = env[name];
    if (text === undefined || text === '') continue;
    const sample = serverSchema.shape[key].def.defaultValue as unknown;
    raw[key] = Array.isArray(sample)
      ? text.split(',').map((s) => s.trim()).filter(Boolean)
      : typeof sample === 'number'
        ? Number(text)
        : text;
  }
  const result = serverSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(
      'server environment',
      result.error.issues.map((i) => {
        const key = i.path[0] as keyof ServerConfig;
        return { field: SERVER_ENV[key] ?? String(key), rule: i.message };
      }),
    );
  }
  const host = env[HOST_ENV];
  return { ...result.data, replicaId: env[REPLICA_ID_ENV] || `pid-${process.pid}`, ...(host ? { host } : {}) };
}
