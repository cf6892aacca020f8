/**
 * What a token costs one replica, away from the rest of the machine (for `npm run bench:auth`):
 * a replica and the development IdP in this process, a `ws` client in another, and this
 * process's CPU per connect with and without auth; then one token check by each way there is to
 * make it (jose on WebCrypto, fast-jwt on node:crypto), per algorithm, side by side.
 */
import { spawn } from 'node:child_process';
import { KeyObject } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createVerifier } from 'fast-jwt';
import { createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { DevIdp } from '../app/src/idp/dev-idp';
import { devUserToken } from '../app/src/idp/tokens';
import { createReplica } from '../app/src/server/replica';
import { authSchema, DEV_ROLES, serverSchema } from '../app/src/topology';
import { freePort } from '../local/processes';
import { median } from './stats';

/** Connects per measurement, how many are in flight at once, tokens checked per measurement, rounds (medians). */
export const ALONE = { connects: 2000, inFlight: 20, checks: 2000, rounds: 3 } as const;
const SECRET = 'bench-auth-alone-secret-0123456789';

/** Opens N connections, ALONE.inFlight at a time, each sending `connect` with its token (if any) and waiting for hello. */
const CLIENT = `
const WebSocket = require('ws');
const [url, n, tokens] = [process.argv[1], Number(process.argv[2]), process.argv[3] ? require(process.argv[3]) : []];
let next = 0, done = 0;
const held = [];
const one = () => {
  if (next >= n) return;
  const ws = new WebSocket(url), i = next++;
  held.push(ws);
  ws.on('open', () => tokens.length && ws.send(JSON.stringify({ type: 'connect', token: tokens[i % tokens.length] })));
  ws.on('message', (d) => {
    if (JSON.parse(d).type !== 'hello') return;
    if (++done === n) { held.forEach((w) => w.terminate()); process.exit(0); } else one();
  });
  ws.on('close', (code) => { if (done < n) { console.error('closed', code); process.exit(1); } });
};
for (let k = 0; k < ${ALONE.inFlight}; k++) one();
`;

/** Runs the client to the end; the tokens go in a file it reads (thousands are over an argument's size limit). */
function runClient(url: string, n: number, tokensFile?: string): Promise<void> {
  return new Promise((resolve, reject) =>
    spawn(process.execPath, ['-e', CLIENT, url, String(n), ...(tokensFile ? [tokensFile] : [])], {
      stdio: ['ignore', 'ignore', 'inherit'],
    }).on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`the connect client exited ${code}`)))),
  );
}

export interface AloneResult {
  /** This process's CPU µs per connect (the replica; the IdP is idle then), medians of the rounds. */
  withoutAuthUs: number;
  withAuthUs: number;
  tokenBytes: number;
}

/** The replica's CPU per connect, without auth and with, alternating for ALONE.rounds rounds. */
export async function replicaAlone(): Promise<AloneResult> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const idp = new DevIdp({ issuer, clientSecret: SECRET });
  await idp.listen(port, '127.0.0.1');
  const tokensFile = join(tmpdir(), `bench-auth-alone-${process.pid}.json`);
  try {
    const tokens: string[] = [];
    for (let i = 0; i < ALONE.connects; i += 50)
      tokens.push(
        ...(await Promise.all(
          Array.from(
            { length: 50 },
            async (_, k) => (await devUserToken(issuer, SECRET, { sub: `vu-${i + k}`, roles: [DEV_ROLES.reader], ttlSeconds: 3600 })).token,
          ),
        )),
      );
    writeFileSync(tokensFile, JSON.stringify(tokens));
    const auth = authSchema.parse({
      mode: 'jwt',
      issuer,
      grants: [{ claim: 'realm_access.roles', role: DEV_ROLES.reader, topics: ['news.*'], allow: ['subscribe'] }],
    });
    const perConnect = { without: [] as number[], with: [] as number[] };
    for (let round = 0; round < ALONE.rounds; round++) {
      for (const withAuth of [false, true]) {
        const settings = { ...serverSchema.parse({}), replicaId: 'bench-alone' };
        const { server } = createReplica(settings, { logLevel: 'silent', auth: withAuth ? auth : undefined });
        const { port: wsPort } = await server.listen(0, '127.0.0.1');
        const url = `ws://127.0.0.1:${wsPort}${settings.path}`;
        try {
          await runClient(url, 200, withAuth ? tokensFile : undefined); // warm: JIT, the JWKS fetched
          const before = process.cpuUsage();
          await runClient(url, ALONE.connects, withAuth ? tokensFile : undefined);
          const used = process.cpuUsage(before);
          perConnect[withAuth ? 'with' : 'without'].push((used.user + used.system) / ALONE.connects);
        } finally {
          await server.stop();
        }
      }
    }
    return { withoutAuthUs: median(perConnect.without), withAuthUs: median(perConnect.with), tokenBytes: Buffer.byteLength(tokens[0]) };
  } finally {
    rmSync(tokensFile, { force: true });
    await idp.close();
  }
}

export interface CheckCost {
  alg: string;
  library: string;
  /** CPU µs per token checked, this process's threads (WebCrypto's pool included). */
  cpuUs: number;
}

/** One token check by jose (WebCrypto) and by fast-jwt (node:crypto), for the algorithms providers sign with. */
export async function tokenChecks(): Promise<CheckCost[]> {
  const out: CheckCost[] = [];
  for (const alg of ['RS256', 'ES256'] as const) {
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
    const keys = createLocalJWKSet({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k', alg }] });
    const claims = { realm_access: { roles: [DEV_ROLES.reader] }, azp: 'ws-load' };
    const tokens = await Promise.all(
      Array.from({ length: ALONE.checks }, (_, i) =>
        new SignJWT({ ...claims, sub: `vu-${i}` })
          .setProtectedHeader({ alg, kid: 'k' })
          .setIssuer('i')
          .setAudience('a')
          .setExpirationTime('1h')
          .sign(privateKey),
      ),
    );
    const fast = createVerifier({
      key: KeyObject.from(publicKey).export({ type: 'spki', format: 'pem' }) as string,
      allowedIss: 'i',
      allowedAud: 'a',
    });
    const ways: [string, (token: string) => unknown][] = [
      ['jose (WebCrypto)', (t) => jwtVerify(t, keys, { issuer: 'i', audience: 'a' })],
      ['fast-jwt (node:crypto)', (t) => fast(t)],
    ];
    for (const [library, check] of ways) {
      const cpu: number[] = [];
      for (let round = 0; round < ALONE.rounds; round++) {
        for (const t of tokens.slice(0, 200)) await check(t);
        const before = process.cpuUsage();
        for (const t of tokens) await check(t);
        const used = process.cpuUsage(before);
        cpu.push((used.user + used.system) / ALONE.checks);
      }
      out.push({ alg, library, cpuUs: median(cpu) });
    }
  }
  return out;
}
