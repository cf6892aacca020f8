import { readFileSync } from 'node:fs';
import { ConfigError } from '../shared/errors';
import { runEntryPoint, EXIT } from '../shared/exit';
import { IDP_ENV } from './clients';
import { DevIdp } from './dev-idp';

/**
 * The development OpenID provider as a process: `node dist/idp/main.js` (the ws-idp container, the
 * local runner's --auth). Settings from IDP_ENV; SIGTERM/SIGINT stop it.
 */
async function main(): Promise<number> {
  const env = process.env;
  const problems: { field: string; rule: string }[] = [];
  const issuer = env[IDP_ENV.issuer];
  if (!issuer || !URL.canParse(issuer)) problems.push({ field: IDP_ENV.issuer, rule: 'must be the URL clients reach the provider at' });
  const port = Number(env[IDP_ENV.port] ?? 8090);
  if (!Number.isInteger(port) || port < 1 || port > 65535) problems.push({ field: IDP_ENV.port, rule: 'must be a port number' });
  const ttl = Number(env[IDP_ENV.tokenTtlSeconds] ?? 600);
  if (!Number.isInteger(ttl) || ttl < 1) problems.push({ field: IDP_ENV.tokenTtlSeconds, rule: 'must be a whole number of seconds' });
  const secret = readSecret(env[IDP_ENV.secretFile], problems);
  if (problems.length) throw new ConfigError('identity provider environment', problems);

  const idp = new DevIdp({ issuer: issuer!, clientSecret: secret!, tokenTtlSeconds: ttl });
  const address = await idp.listen(port, env[IDP_ENV.host] || '0.0.0.0');
  console.log(JSON.stringify({ msg: 'listening', issuer, port: address.port }));
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await idp.close();
  return EXIT.ok;
}

function readSecret(file: string | undefined, problems: { field: string; rule: string }[]): string | undefined {
  if (!file) return void problems.push({ field: IDP_ENV.secretFile, rule: 'must name the file holding the clients’ secret' });
  try {
    const secret = readFileSync(file, 'utf8').trim();
    if (secret.length >= 16) return secret;
    problems.push({ field: IDP_ENV.secretFile, rule: `${file} must hold a secret of at least 16 characters` });
  } catch (error) {
    problems.push({ field: IDP_ENV.secretFile, rule: `cannot read ${file}: ${(error as Error).message}` });
  }
  return undefined;
}

runEntryPoint(main);
