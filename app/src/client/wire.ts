import { CENTRIFUGE_PATH } from '../shared/centrifuge';
import type { ServerMessage } from '../shared/protocol';
import type { LoadProfile } from '../shared/profile';
import { CentrifugeWire } from './centrifuge-wire';

/** What a virtual user sends, in the native protocol's words; each wire encodes it its own way. */
export type Outgoing =
  | { type: 'connect'; token?: string }
  | { type: 'refresh'; token: string }
  | { type: 'echo'; id: number; ts: number; payload?: string }
  | { type: 'subscribe'; topic: string; since?: { offset: number; epoch: string }; delta?: 'fossil' }
  | { type: 'publish'; topic: string; data: unknown; id: string; ts: number };

/**
 * One connection's protocol: what a virtual user says, as text, and what the server sent, as the
 * native messages the user understands (virtual-user.ts stays one state machine for both).
 */
export interface Wire {
  /** A Centrifugo client always opens with `connect`; a native one only to offer a token. */
  readonly connectsAlways: boolean;
  /** The client refreshes its token on its own timer (Centrifugo's `ttl`), not on the server's `expiring`. */
  readonly refreshesOnTimer: boolean;
  encode(message: Outgoing): string;
  /** The messages in one frame, and what to answer at once (a pong); undefined when it is not this protocol. */
  decode(text: string): { messages: ServerMessage[]; answer?: string } | undefined;
  /** A close code in the native protocol's terms, so one set of rules judges closes. */
  nativeClose(code: number): number;
}

/** The project's own protocol: messages are the JSON objects themselves. */
export class NativeWire implements Wire {
  readonly connectsAlways = false;
  readonly refreshesOnTimer = false;

  encode(message: Outgoing): string {
    return JSON.stringify(message);
  }

  decode(text: string): { messages: ServerMessage[] } | undefined {
    try {
      return { messages: [JSON.parse(text) as ServerMessage] };
    } catch {
      return undefined;
    }
  }

  nativeClose(code: number): number {
    return code;
  }
}

/** The URL a protocol connects to: Centrifugo's at its own path on the same origin. */
export function urlFor(url: string, protocol: LoadProfile['protocol']): string {
  if (protocol === 'native') return url;
  const target = new URL(url);
  target.pathname = CENTRIFUGE_PATH;
  return target.toString();
}

/** A new connection's wire for the profile's protocol. */
export function wireFor(protocol: LoadProfile['protocol']): Wire {
  return protocol === 'centrifuge' ? new CentrifugeWire() : new NativeWire();
}
