import { connect as netConnect, isIP, type Socket } from 'node:net';
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
  const tcp = netConnect({ host: target.host, port: target.port, localAddress, noDelay: true });
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

/**
 * One TLS context for all of a process's connections (trusting `ca`, or the system's CAs): without
 * it Node builds one per connection, which was a third of the client's CPU in a reconnect storm.
 */
export function sharedSecureContext(ca?: Buffer): SecureContext {
  return createSecureContext(ca ? { ca } : {});
}
