import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { CENTRIFUGE_PATH } from '../shared/centrifuge';
import type { ServerConfig } from '../topology';
import { deflateOfferAcceptable } from './compression';

export const REJECT_REASONS = [
  'path',
  'draining',
  'capacity',
  'rebalancing',
  'origin',
  'compression_required',
  'invalid_handshake',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/** HTTP status for each refusal; 503s carry Retry-After so a client (or nginx) tries elsewhere. */
const STATUS: Record<RejectReason, number> = {
  path: 404,
  draining: 503,
  capacity: 503,
  rebalancing: 503,
  origin: 403,
  compression_required: 400,
  invalid_handshake: 400,
};

export interface HandshakeState {
  draining: boolean;
  /** Open connections plus handshakes in progress. */
  load: number;
  /** A rebalance round's temporary cap, while it lasts. */
  rebalanceCap?: number;
}

/** Decides whether an upgrade request may proceed; returns the reason to refuse it, if any. */
export function checkHandshake(req: IncomingMessage, settings: ServerConfig, state: HandshakeState): RejectReason | undefined {
  const pathname = (req.url ?? '/').split('?')[0];
  if (pathname !== settings.path && !(settings.centrifuge && pathname === CENTRIFUGE_PATH)) return 'path';
  if (state.draining) return 'draining';
  if (state.load >= settings.maxConnections) return 'capacity';
  if (state.rebalanceCap !== undefined && state.load >= state.rebalanceCap) return 'rebalancing';
  const origin = req.headers.origin;
  // Browsers always send Origin; the allow-list stops other sites' pages (cross-site WebSocket
  // hijacking). Non-browser clients send none and are not affected.
  if (settings.allowedOrigins.length > 0 && origin !== undefined && !settings.allowedOrigins.includes(origin)) return 'origin';
  const offer = req.headers['sec-websocket-extensions'];
  // An offer our settings cannot take is declined, as RFC 7692 asks: the connection goes uncompressed.
  if (offer !== undefined && settings.compression !== 'off' && !deflateOfferAcceptable(offer))
    delete req.headers['sec-websocket-extensions'];
  if (settings.compression === 'required' && !/\bpermessage-deflate\b/i.test(req.headers['sec-websocket-extensions'] ?? '')) {
    return 'compression_required';
  }
  return undefined;
}

/** Answers a refused upgrade with a real HTTP response, then closes the socket. */
export function rejectHandshake(socket: Duplex, reason: RejectReason): number {
  const status = STATUS[reason];
  const body = `${reason}\n`;
  const headers = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}`,
    'Connection: close',
    'Content-Type: text/plain',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...(status === 503 ? ['Retry-After: 1'] : []),
  ];
  if (socket.writable) socket.end(`${headers.join('\r\n')}\r\n\r\n${body}`);
  else socket.destroy();
  return status;
}
