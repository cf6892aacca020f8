import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWK } from 'jose';
import { ROTATE_KEYS_PATH } from './clients';
import { createDevProvider, newSigningKey } from './provider';
import { DEV_IDP } from '../topology/auth';

/**
 * A request the proxy passed on from DEV_IDP.proxyPath (the page's sign-in, from a browser): the
 * provider answers it as mounted there, so the URLs it hands out (endpoints, the login form, its
 * cookies' paths) lead back through the proxy. `originalUrl` is how oidc-provider finds its mount.
 */
function unprefixed(req: IncomingMessage): IncomingMessage {
  const prefix = DEV_IDP.proxyPath;
  if (req.url !== prefix && !req.url?.startsWith(`${prefix}/`) && !req.url?.startsWith(`${prefix}?`)) return req;
  const rest = req.url.slice(prefix.length);
  Object.assign(req, { originalUrl: req.url, url: rest.startsWith('/') ? rest : `/${rest}` });
  return req;
}

/**
 * The development IdP as an HTTP server. Its keys rotate as a careful provider's do: the next key
 * is published before it signs anything (so replicas that fetched the JWKS since know it, and no
 * token waits on a refetch), and the previous one stays published after, so tokens it signed stay
 * valid until they expire. A rotation swaps in a provider with the new key set.
 */
export class DevIdp {
  /** The key that signs, the one that will next, the one that did. */
  private keys?: { signing: JWK; next: JWK; previous?: JWK };
  private handle?: (req: IncomingMessage, res: ServerResponse) => void;
  private readonly server: Server;

  constructor(
    private readonly o: {
      readonly issuer: string;
      readonly clientSecret: string;
      readonly tokenTtlSeconds?: number;
      readonly pageOrigins?: readonly string[];
    },
  ) {
    this.server = createServer((req, res) => {
      if (req.url === ROTATE_KEYS_PATH) return void this.onRotate(req, res);
      this.handle!(unprefixed(req), res);
    });
  }

  get issuer(): string {
    return this.o.issuer;
  }

  /** Starts with a fresh key; resolves with the bound address. */
  async listen(port: number, host: string): Promise<AddressInfo> {
    await this.rotateKeys();
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    return this.server.address() as AddressInfo;
  }

  /** The next key starts signing; a new next one is published; the one that signed stays published. Resolves with the signing kid. */
  async rotateKeys(): Promise<string> {
    const next = await newSigningKey();
    this.keys = this.keys ? { signing: this.keys.next, next, previous: this.keys.signing } : { signing: await newSigningKey(), next };
    const { signing, previous } = this.keys;
    const provider = createDevProvider({
      issuer: this.o.issuer,
      keys: [signing, next, ...(previous ? [previous] : [])],
      signingKid: signing.kid!,
      clientSecret: this.o.clientSecret,
      tokenTtlSeconds: this.o.tokenTtlSeconds,
      pageOrigins: this.o.pageOrigins,
    });
    this.handle = provider.callback();
    return signing.kid!;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async onRotate(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST' || req.headers.authorization !== `Bearer ${this.o.clientSecret}`) {
      res.writeHead(req.method === 'POST' ? 401 : 405).end();
      return;
    }
    const kid = await this.rotateKeys();
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ kid }));
  }
}
