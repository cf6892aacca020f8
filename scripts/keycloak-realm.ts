/**
 * `npm run keycloak-realm -- [--realm NAME] [--redirect-uri URL]... [--out FILE]`: a Keycloak
 * realm import for the deployment's `auth` (deployment.ts), rendered by keycloak/realm.ts: its
 * roles, the ws-backend and ws-web clients, the audience. JSON on stdout, or in FILE.
 */
import { writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { EXIT, runEntryPoint } from '../app/src/shared/exit';
import { DEV_IDP_ISSUER, devAuth } from '../app/src/topology';
import { deploymentTopology } from '../deployment';
import { renderKeycloakRealm } from '../keycloak/realm';

interface RealmFlags {
  realm?: string;
  redirectUri: string[];
  out?: string;
}

function main(): number {
  const o = new Command('keycloak-realm')
    .description("Render a Keycloak realm import (roles, clients, audience) from the deployment's auth section.")
    .option('--realm <name>', "the realm's name (default: the one in auth.issuer's /realms/<name>, else ws-notifications)")
    .option(
      '--redirect-uri <url>',
      "where the browser client (the page's, proxy.page.clientId: ws-page) may return after login (repeatable)",
      (v, all: string[]) => [...all, v],
      [],
    )
    .option('--out <file>', 'write it to this file instead of stdout')
    .parse()
    .opts<RealmFlags>();
  const topology = deploymentTopology(process.env);
  const asDeployed = topology.auth;
  // With auth off there are no grants to map: the ones `auth: { mode: 'jwt' }` would use.
  const auth = asDeployed.mode === 'jwt' ? asDeployed : devAuth(DEV_IDP_ISSUER);
  if (asDeployed.mode !== 'jwt')
    console.error("auth.mode is none in deployment.ts: rendering the grants `auth: { mode: 'jwt' }` would use");
  const { realm, unmapped } = renderKeycloakRealm(auth, {
    realm: o.realm,
    webClient: topology.proxy.page.clientId,
    ...(o.redirectUri.length ? { redirectUris: o.redirectUri } : {}),
  });
  for (const claim of unmapped) console.error(`not in the realm: ${claim}`);
  const text = `${JSON.stringify(realm, null, 2)}\n`;
  if (o.out) {
    writeFileSync(o.out, text);
    console.error(`wrote ${o.out}: realm ${realm.realm}, ${realm.roles.realm.length} realm role(s), clients ws-backend and ws-web`);
  } else process.stdout.write(text);
  return EXIT.ok;
}

runEntryPoint(main);
