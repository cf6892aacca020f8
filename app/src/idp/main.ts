import { readFileSync } from 'node:fs';
import { ConfigError } from '../shared/errors';
import { runEntryPoint, EXIT } from '../shared/exit';
import { DevIdp } from './dev-idp';
import { IDP_ENV, idpSettingsFromEnv } from './settings';

/**
 * The development OpenID provider as a process: `node dist/idp/main.js` (the ws-idp container, the
 * local runner's --auth). Settings from IDP_ENV (./settings.ts); SIGTERM/SIGINT stop it.
 */
async function main(): Promise<number> {
  const settings = idpSettingsFromEnv(process.env);
  const idp = new DevIdp({
    issuer: settings.issuer,
    clientSecret: readSecret(settings.secretFile),
    tokenTtlSeconds: settings.tokenTtlSeconds,
    pageOrigins: settings.pageOrigins,
  });
  const address = await idp.listen(settings.port, settings.host);
  console.log(JSON.stringify({ msg: 'listening', issuer: settings.issuer, port: address.port }));
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await idp.close();
  return EXIT.ok;
}

/** The clients' secret: at least 16 characters, from its file. */
function readSecret(file: string): string {
  let secret: string;
  try {
    secret = readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new ConfigError('identity provider environment', [
      { field: IDP_ENV.secretFile, rule: `cannot read ${file}: ${(error as Error).message}` },
    ]);
  }
  if (secret.length < 16)
    throw new ConfigError('identity provider environment', [
      { field: IDP_ENV.secretFile, rule: `${file} must hold a secret of at least 16 characters` },
    ]);
  return secret;
}

runEntryPoint(main);
