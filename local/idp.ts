import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROTATE_KEYS_PATH } from '../app/src/idp/clients';
import type { Topology } from '../app/src/topology';
import type { TokenVia } from '../app/src/shared/profile';
import { IDP_SECRET_FILE, idpSpec } from '../components/idp';
import { alive, RUN_PREFIX } from './leftovers';
import { writeSecret } from './secrets';
import { freePort, startComponent, stopComponent, waitForPort, type Owned, type start } from './processes';

/** The development OpenID provider of a local run (`npm run local -- --auth`). */
export interface LocalIdp {
  /** http://127.0.0.1:PORT: its tokens' `iss`. */
  readonly issuer: string;
  /** The clients' secret (also the key-rotation endpoint's key). */
  readonly secretFile: string;
  readonly process: Owned;
  /** Rotates its signing key for real (the next key was published ahead); resolves with the new kid. */
  rotateKeys(): Promise<string>;
  stop(): Promise<void>;
}

/** Where a run records its provider, in its runtime directory. */
const IDP_RECORD = 'idp.json';

/**
 * The provider of a local run that is up now (the newest, if several): what `npm run token` asks
 * when no --issuer is given.
 */
export function findLocalIdp(root = tmpdir()): { issuer: string; secretFile: string } | undefined {
  const found = readdirSync(root)
    .filter((name) => name.startsWith(RUN_PREFIX))
    .flatMap((name) => {
      const file = join(root, name, IDP_RECORD);
      try {
        const record = JSON.parse(readFileSync(file, 'utf8')) as { issuer: string; secretFile: string; pid: number };
        return alive(record.pid) ? [{ ...record, at: statSync(file).mtimeMs }] : [];
      } catch {
        return [];
      }
    })
    .sort((a, b) => b.at - a.at);
  return found[0] && { issuer: found[0].issuer, secretFile: found[0].secretFile };
}

/** Starts the provider from the run's compiled app, on a free loopback port; resolves once it answers. */
export async function startIdp(
  runtimeDir: string,
  o: { appDir: string; logsDir: string; startProcess: (...args: Parameters<typeof start>) => Owned; pageOrigins?: readonly string[] },
): Promise<LocalIdp> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const secretFile = writeSecret(runtimeDir, IDP_SECRET_FILE);
  const spec = idpSpec({ issuer, port, host: '127.0.0.1', secretFile, pageOrigins: o.pageOrigins });
  const p = startComponent('idp', spec, { cwd: o.appDir, logFile: join(o.logsDir, 'idp.log'), startProcess: o.startProcess });
  await waitForPort(port, p, undefined, '127.0.0.1');
  const secret = readFileSync(secretFile, 'utf8').trim();
  // Where `npm run token` finds the running provider (local/idp.ts: findLocalIdp).
  writeFileSync(join(runtimeDir, IDP_RECORD), JSON.stringify({ issuer, secretFile, pid: p.child.pid }));
  return {
    issuer,
    secretFile,
    process: p,
    async rotateKeys() {
      const r = await fetch(`${issuer}${ROTATE_KEYS_PATH}`, { method: 'POST', headers: { authorization: `Bearer ${secret}` } });
      if (!r.ok) throw new Error(`the IdP's key rotation answered ${r.status}`);
      return ((await r.json()) as { kid: string }).kid;
    },
    stop: () => stopComponent(p, spec),
  };
}

/**
 * The run's topology with auth on against this provider (its grants kept: topology/auth.ts),
 * tokens for the load client's virtual users, and the admin API's key (revocations) when none was given.
 */
export function withDevAuth(
  topology: Topology,
  idp: LocalIdp,
  o: { tokenTtlMs: number; tokenVia: TokenVia; apiKeyFile: string },
): Topology {
  return {
    ...topology,
    // The topology's grants and settings, against this provider.
    auth: { ...topology.auth, issuer: idp.issuer },
    server: { ...topology.server, apiKeyFile: topology.server.apiKeyFile ?? o.apiKeyFile },
    load: { ...topology.load, tokens: { issuer: idp.issuer, secretFile: idp.secretFile, ttlMs: o.tokenTtlMs, via: o.tokenVia } },
  };
}
