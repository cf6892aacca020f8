import WebSocket, { type PerMessageDeflateOptions } from 'ws';
import type { CompressionMode } from '../topology';

/**
 * permessage-deflate settings chosen for memory per connection (see docs/compression.md):
 * no context takeover on either side, so no sliding window is kept between messages; small
 * windows (2^10) and memLevel 4 shrink what each zlib stream allocates; level 2 as in the seed;
 * small messages (under the threshold) are sent uncompressed, where deflate costs more than it saves.
 */
export const DEFLATE_OPTIONS: PerMessageDeflateOptions = {
  serverNoContextTakeover: true,
  clientNoContextTakeover: true,
  serverMaxWindowBits: 10,
  clientMaxWindowBits: 10,
  zlibDeflateOptions: { level: 2, memLevel: 4 },
  threshold: 256,
  concurrencyLimit: 10,
};

export function deflateFor(mode: CompressionMode): PerMessageDeflateOptions | false {
  return mode === 'off' ? false : DEFLATE_OPTIONS;
}

/** Whether the connection's handshake negotiated permessage-deflate. */
export function negotiatedDeflate(ws: WebSocket): boolean {
  return ws.extensions.includes('permessage-deflate');
}

/** ws's own negotiation, exported by ws but not in its type definitions. */
const wsExtensions = WebSocket as unknown as {
  extension: { parse(header: string): Record<string, Record<string, unknown>[]> };
  PerMessageDeflate: new (options: PerMessageDeflateOptions & { isServer: boolean }) => { accept(offers: unknown[]): unknown };
};

/**
 * Whether ws would accept a permessage-deflate offer with our settings. ws answers an offer it
 * cannot accept (a smaller window than ours, say) with 400; RFC 7692 (section 5) has the server
 * decline the extension instead, so the handshake code drops such an offer before ws sees it.
 * A header ws cannot parse is left for ws to refuse.
 */
export function deflateOfferAcceptable(header: string): boolean {
  let offers: Record<string, unknown>[] | undefined;
  try {
    offers = wsExtensions.extension.parse(header)['permessage-deflate'];
  } catch {
    return true;
  }
  if (!offers) return true;
  try {
    new wsExtensions.PerMessageDeflate({ ...DEFLATE_OPTIONS, isServer: true }).accept(offers);
    return true;
  } catch {
    return false;
  }
}

/** The parts of ws's internals read to release an inflate stream: ws has no API for it. */
type InflateInternals = {
  _extensions: Record<string, { _inflate: { close(): void } | null } | undefined>;
  _receiver?: { _state: number; _fragmented: number };
};
/** ws's receiver state while a message is being inflated (lib/receiver.js). */
const INFLATING = 5;

/**
 * Releases a connection's inflate stream (zlib state, window and output chunk) when the client is
 * between messages. ws creates it on the first compressed message a client sends and otherwise
 * keeps it for the connection's life; a client that sends again gets a new one. Not while a
 * message is being inflated, nor inside a fragmented one, whose fragments share the stream.
 * Returns whether one was released.
 */
export function releaseInflate(ws: WebSocket): boolean {
  const { _extensions, _receiver } = ws as unknown as InflateInternals;
  const extension = _extensions['permessage-deflate'];
  if (!extension?._inflate || !_receiver || _receiver._state === INFLATING || _receiver._fragmented !== 0) return false;
  extension._inflate.close();
  extension._inflate = null;
  return true;
}

/** Whether a connection holds an inflate stream now (the idle release's test reads it). */
export function holdsInflate(ws: WebSocket): boolean {
  return Boolean((ws as unknown as InflateInternals)._extensions['permessage-deflate']?._inflate);
}
