import { readFileSync } from 'node:fs';
import { BROKER_CREDENTIALS_ENV, CONTROL_KEY_ENV, fromAuthEnv, fromBrokerEnv, fromServerEnv, SERVER_ENV } from '../topology/server-env';
import { ConfigError } from '../shared/errors';
import { selfExitMs } from '../topology/schema';
import { EXIT, reportFailure } from '../shared/exit';
import { JetStreamBroker } from './broker';
import { createLogger } from './logger';
import { createReplica } from './replica';

/**
 * One replica: `npm run server` (settings from WS_* environment variables, see README).
 * WS_HOST (HOST_ENV) picks the bind address (default: all). SIGTERM/SIGINT drain gracefully; a second
 * signal (half a second or more later) exits at once.
 */
async function main(): Promise<void> {
  // An invalid variable is a ConfigError naming it: exit 2 (shared/exit.ts).
  const settings = fromServerEnv(process.env);
  const brokerConfig = fromBrokerEnv(process.env);
  const auth = fromAuthEnv(process.env);
  if (settings.deltaTopics.length > 0 && !brokerConfig)
    throw new ConfigError('server environment', [
      {
        field: SERVER_ENV.deltaTopics,
        rule: 'needs the broker (WS_BROKER_URLS): a delta goes only to a subscriber positioned on the previous offset',
      },
    ]);
  const user = process.env[BROKER_CREDENTIALS_ENV.user];
  const credentials = user
    ? { user, pass: readKey(process.env[BROKER_CREDENTIALS_ENV.passwordFile], BROKER_CREDENTIALS_ENV.passwordFile)! }
    : undefined;
  if (user && !credentials?.pass)
    throw new ConfigError('server environment', [
      { field: BROKER_CREDENTIALS_ENV.passwordFile, rule: `must name the password file of ${user}` },
    ]);
  const broker = brokerConfig
    ? await JetStreamBroker.connect(brokerConfig, settings.replicaId, createLogger(settings.replicaId, settings.logLevel), credentials)
    : undefined;
  const apiKey = readKey(settings.apiKeyFile, SERVER_ENV.apiKeyFile);
  const controlKey = readKey(process.env[CONTROL_KEY_ENV], CONTROL_KEY_ENV);
  const { server, log } = createReplica(settings, { broker, apiKey, controlKey, auth });
  try {
    await server.listen(settings.port, settings.host);
  } catch (error) {
    log.fatal({ err: error }, 'cannot listen');
    process.exit(EXIT.failed);
  }

  let firstSignalAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (firstSignalAt) {
      // npm and terminals may deliver one Ctrl-C twice (to the group and forwarded); only a
      // deliberate second signal skips the drain.
      if (Date.now() - firstSignalAt < 500) return;
      log.warn({ signal }, 'second signal, exiting now');
      process.exit(EXIT.failed);
    }
    firstSignalAt = Date.now();
    log.info({ signal }, 'signal received, draining');
    // The deadline holds even if something in the drain hangs.
    setTimeout(() => process.exit(EXIT.failed), selfExitMs(settings)).unref();
    server.drain().then(() => process.exit(EXIT.ok));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // Every request and message path handles its own failures; reaching these is a bug.
  process.on('uncaughtException', (error) => {
    log.fatal({ err: error }, 'uncaught exception');
    process.exit(EXIT.failed);
  });
  process.on('unhandledRejection', (error) => {
    log.fatal({ err: error }, 'unhandled rejection');
    process.exit(EXIT.failed);
  });
}

/** A key from its secret file (the publish API's, the control endpoints'); an unreadable or short one is a configuration error naming the variable. */
function readKey(file: string | undefined, variable: string): string | undefined {
  if (file === undefined) return undefined;
  let key: string;
  try {
    key = readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new ConfigError('server environment', [{ field: variable, rule: `cannot read ${file}: ${(error as Error).message}` }]);
  }
  if (key.length < 16)
    throw new ConfigError('server environment', [{ field: variable, rule: `${file} must hold a key of at least 16 characters` }]);
  return key;
}

main().catch((error) => process.exit(reportFailure(error)));
