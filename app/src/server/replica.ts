import type { AuthConfig } from '../topology/auth';
import { createLogger, type Logger } from './logger';
import { createMetrics, type ServerMetrics } from './metrics';
import type { JetStreamBroker } from './broker';
import { NotificationServer, type ServerSettings } from './server';

export interface Replica {
  server: NotificationServer;
  log: Logger;
  metrics: ServerMetrics;
}

/**
 * One replica, assembled: its logger and its own metrics registry, both named after it. The
 * process entry point, the tests and the benchmarks all build replicas here. `logLevel`
 * overrides the settings' ('silent' for tests and benchmarks).
 */
export function createReplica(
  settings: ServerSettings,
  options: { logLevel?: string; broker?: JetStreamBroker; apiKey?: string; controlKey?: string; auth?: AuthConfig } = {},
): Replica {
  const log = createLogger(settings.replicaId, options.logLevel ?? settings.logLevel);
  const metrics = createMetrics(settings.replicaId);
  return {
    server: new NotificationServer(settings, log, metrics, {
      broker: options.broker,
      apiKey: options.apiKey,
      controlKey: options.controlKey,
      auth: options.auth,
    }),
    log,
    metrics,
  };
}
