import { fromServerEnv } from '../topology/server-env';
import { ConfigError } from '../shared/errors';
import { createLogger } from './logger';
import { createMetrics } from './metrics';
import { NotificationServer } from './server';

/**
 * One replica: `npm run server` (settings from WS_* environment variables, see README).
 * WS_HOST picks the bind address (default: all). SIGTERM/SIGINT drain gracefully; a second
 * signal (half a second or more later) exits at once.
 */
async function main(): Promise<void> {
  let settings;
  try {
    settings = fromServerEnv(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(2);
    }
    throw error;
  }
  const log = createLogger(settings.replicaId, settings.logLevel);
  const server = new NotificationServer(settings, log, createMetrics(settings.replicaId));
  try {
    await server.listen(settings.port, process.env.WS_HOST || undefined);
  } catch (error) {
    log.fatal({ err: error }, 'cannot listen');
    process.exit(1);
  }

  let firstSignalAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (firstSignalAt) {
      // npm and terminals may deliver one Ctrl-C twice (to the group and forwarded); only a
      // deliberate second signal skips the drain.
      if (Date.now() - firstSignalAt < 500) return;
      log.warn({ signal }, 'second signal, exiting now');
      process.exit(1);
    }
    firstSignalAt = Date.now();
    log.info({ signal }, 'signal received, draining');
    // The deadline holds even if something in the drain hangs.
    setTimeout(() => process.exit(1), settings.drainDeadlineMs + 2000).unref();
    server.drain().then(() => process.exit(0));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('uncaughtException', (error) => {
    log.fatal({ err: error }, 'uncaught exception');
    process.exit(1);
  });
}

void main();
