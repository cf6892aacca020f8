import { lookup, type LookupAddress, type LookupAllOptions } from 'node:dns';
import { connect as netConnect, isIP, type LookupFunction, type Socket } from 'node:net';
import { createSecureContext, type SecureContext } from 'node:tls';

/**
 * TCP first, WebSocket after. A virtual user opens its TCP connection here and builds the
 * WebSocket (ws, its HTTP request, and the TLS socket with the session to resume) only once TCP
 * has connected. In a reconnect storm against a moving address most attempts are refused at the
 * TCP step, and building those objects for each was most of the client's busy time there.
 */

/** Where a URL's connections go. */
export interface Target {
  readonly host: string;
  readonly port: number;
  readonly secure: boolean;
  /** SNI: the host name, never an address. */
  readonly servername?: string;
}

export function targetOf(url: string): Target {
  const u = new URL(url);
  const secure = u.protocol === 'wss:';
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(u.port) || (secure ? 443 : 80), secure, servername: isIP(host) ? undefined : host };
}

/** An attempt still connecting: cancel() ends it, and its callback hears `cancelled`. */
export interface PendingTcp {
  cancel(): void;
}

export const TCP_CANCELLED = 'closed before the connection was established';

/**
 * Connects TCP to the target within `timeoutMs`; `done` gets the socket, or the error (a timeout
 * reads as ws's own handshake timeout, so it is classified the same way).
 */
export function connectTcp(
  target: Target,
  localAddress: string | undefined,
  timeoutMs: number,
  done: (error: Error | undefined, socket?: Socket) => void,
): PendingTcp {
  // No Nagle: the HTTP upgrade request follows the TLS Finished at once, and waiting for its ACK
  // (delayed up to 40 ms by the server) put that into every connect time.
  const tcp = netConnect({ host: target.host, port: target.port, localAddress, noDelay: true, lookup: rememberedLookup });
  let settled = false;
  const settle = (error?: Error) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    tcp.removeListener('error', settle);
    tcp.removeListener('close', closed);
    if (error) {
      tcp.destroy();
      done(error);
    } else done(undefined, tcp);
  };
  const closed = () => settle(new Error(TCP_CANCELLED));
  const timer = setTimeout(() => settle(new Error('Opening handshake has timed out (TCP connect)')), timeoutMs);
  tcp.once('error', settle);
  tcp.once('close', closed);
  tcp.once('connect', () => settle());
  return { cancel: () => settle(new Error(TCP_CANCELLED)) };
}

/** dns.lookup asked for all of a host's addresses. */
type AllAddresses = (
  hostname: string,
  options: LookupAllOptions,
  callback: (error: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

/** How long a host's addresses are reused: a short DNS cache, as a browser keeps. */
export const LOOKUP_MEMORY_MS = 5_000;

/**
 * dns.lookup (or `resolve`), its answer reused for LOOKUP_MEMORY_MS per host: a virtual user
 * connects thousands of times to one host, and each lookup was a getaddrinfo on libuv's threads.
 * Hand-written because cacheable-lookup asks the DNS servers itself instead of getaddrinfo, so
 * /etc/hosts and nsswitch could answer otherwise than the lookups it replaces. Failures are not kept.
 */
export function rememberingLookup(resolve: AllAddresses = lookup): LookupFunction {
  const looked = new Map<string, { at: number; addresses: LookupAddress[] }>();
  return (hostname, options, callback) => {
    const key = `${hostname}/${options.family ?? 0}/${options.hints ?? 0}`;
    const answer = (addresses: LookupAddress[]) =>
      options.all ? callback(null, addresses) : callback(null, addresses[0].address, addresses[0].family);
    const known = looked.get(key);
    if (known && performance.now() - known.at < LOOKUP_MEMORY_MS) return process.nextTick(answer, known.addresses);
    resolve(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, '', 0);
      looked.set(key, { at: performance.now(), addresses });
      answer(addresses);
    });
  };
}

const rememberedLookup = rememberingLookup();

/**
 * One TLS context for all of a process's connections (trusting `ca`, or the system's CAs): without
 * it Node builds one per connection, which was a third of the client's CPU in a reconnect storm.
 */
export function sharedSecureContext(ca?: Buffer): SecureContext {
  return createSecureContext(ca ? { ca } : {});
}
