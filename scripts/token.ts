/**
 * `npm run token -- --sub alice --grant 'news.*:subscribe' --ttl 10m`: a token from the
 * development OpenID provider, printed alone on stdout, for trying the service with any WebSocket
 * client ({"type":"connect","token":"..."} as the first message). Without --issuer it asks the
 * provider of the local run that is up (`npm run local -- --auth --linger 10m`).
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { devUserToken } from '../app/src/idp/tokens';
import { parseDuration } from '../app/src/shared/duration';
import { ConfigError } from '../app/src/shared/errors';
import { EXIT, runEntryPoint } from '../app/src/shared/exit';
import { findLocalIdp } from '../local/idp';

const SOURCE = 'token options';
const list = (value: string, all: string[]) => [...all, value];

interface TokenFlags {
  sub: string;
  grant: string[];
  role: string[];
  ttl: string;
  issuer?: string;
  secretFile?: string;
}

async function main(): Promise<number> {
  const o = new Command('token')
    .description('Print an access token from the development OpenID provider (oidc-provider).')
    .requiredOption('--sub <name>', 'the subject (a user name: letters, digits, _ : -)')
    .option('--grant <pattern:actions>', "a grant the token carries itself, e.g. 'news.*:subscribe' (repeatable)", list, [])
    .option('--role <name>', 'a realm role (realm_access.roles), e.g. notify-reader (repeatable)', list, [])
    .option('--ttl <d>', 'lifetime (30s, 10m, 2h; at most 24h)', '10m')
    .option('--issuer <url>', "the provider (default: the running local run's, `npm run local -- --auth`)")
    .option('--secret-file <file>', "the file holding its clients' secret (default: the local run's)")
    .parse()
    .opts<TokenFlags>();
  let ttlSeconds: number;
  try {
    ttlSeconds = Math.round(parseDuration(o.ttl) / 1000);
  } catch (error) {
    throw new ConfigError(SOURCE, [{ field: '--ttl', rule: (error as Error).message }]);
  }
  const local = o.issuer ? undefined : findLocalIdp();
  const issuer = o.issuer ?? local?.issuer;
  const secretFile = o.secretFile ?? local?.secretFile;
  if (!issuer || !secretFile) {
    console.error('no provider: start one with `npm run local -- --auth --linger 10m`, or give --issuer and --secret-file');
    return EXIT.failed;
  }
  const secret = readFileSync(secretFile, 'utf8').trim();
  const { token, expiresIn } = await devUserToken(issuer, secret, { sub: o.sub, grants: o.grant, roles: o.role, ttlSeconds });
  console.error(`token for ${o.sub} from ${issuer}, valid ${expiresIn} s; send {"type":"connect","token":"<it>"} first`);
  console.log(token);
  return EXIT.ok;
}

runEntryPoint(main);
