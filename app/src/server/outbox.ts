import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { Payload } from './deflate-once';
import { holdForTurn } from './turn-cork';

/** A message as the server hands it over: its UTF-8 bytes, or a payload shared with other connections. */
export type Outgoing = Buffer | Payload;

/** How a connection's messages leave. */
export interface OutboxOptions {
  /** Unsent bytes the socket may hold before messages wait here. */
  highWater: number;
  /** Hold the socket for the turn, so a turn's frames leave in one write (writeCoalescing `turn`). */
  holdTurn: boolean;
  /**
   * Who frames the messages. `ws`: its send, which deflates with the connection's own stream
   * (permessage-deflate negotiated, server.deflate `per-connection`). Otherwise ws never deflates
   * here, so nothing of its own can be queued, and each frame is written whole, built once per
   * message for every connection it goes to: as `text`, or `deflated` where the connection
   * negotiated permessage-deflate and deflating the message pays (server.deflate `once`).
   */
  framing: 'ws' | 'text' | 'deflated';
}

/**
 * A connection's outgoing messages, held in the replica until its socket has room. ws hands every
 * send to the socket at once, so a slow consumer's backlog sat in the socket's buffer, and the
 * 1008 close frame queued behind all of it: it rarely got out before the connection was cut, and
 * the client saw 1006. Here the socket holds at most `highWater` unsent bytes; the rest waits in
 * this queue, which the slow-consumer cut drops, so the close frame goes out right behind what the
 * socket already has. Order is kept: nothing jumps the queue.
 */
export class Outbox {
  private queue: Outgoing[] = [];
  private head = 0;
  private queuedBytes = 0;
  /** Sends handed to ws whose write has not completed. */
  pending = 0;
  /** The last time a write completed (or the first pending one started). */
  lastProgress = Date.now();

  constructor(
    private readonly ws: WebSocket,
    /** The connection's socket, the one ws writes to. */
    private readonly socket: Duplex,
    private readonly options: OutboxOptions,
  ) {}

  /** Bytes not yet handed to the kernel: in the socket, and waiting here. */
  get unsent(): number {
    return this.ws.bufferedAmount + this.queuedBytes;
  }

  /** Sends a text frame (bytes already UTF-8) now, or after what is waiting. */
  push(data: Outgoing): void {
    if (this.queuedBytes === 0 && this.ws.bufferedAmount < this.options.highWater) return this.sendNow(data);
    this.queue.push(data);
    this.queuedBytes += data.length;
  }

  /** Forgets what is waiting (the connection is being closed): the close frame goes next. */
  drop(): void {
    this.queue = [];
    this.head = 0;
    this.queuedBytes = 0;
  }

  private sendNow(data: Outgoing): void {
    if (this.pending++ === 0) this.lastProgress = Date.now();
    if (this.options.holdTurn) holdForTurn(this.socket);
    const sent = () => {
      this.pending--;
      this.lastProgress = Date.now();
      this.pump();
    };
    if (this.options.framing === 'ws') return this.ws.send(data instanceof Payload ? data.text : data, { binary: false }, sent);
    // ws's own deflate stays unused (never created), so its writes (pongs, the close frame) are never
    // queued behind one, and ours keep their order with them.
    const payload = data instanceof Payload ? data : Payload.of(data);
    this.socket.write(payload.frame(this.options.framing === 'deflated' && payload.deflated !== null), sent);
  }

  /** Hands waiting messages to the socket while it has room. */
  private pump(): void {
    while (this.queuedBytes > 0 && this.ws.readyState === this.ws.OPEN && this.ws.bufferedAmount < this.options.highWater) {
      const data = this.queue[this.head++];
      this.queuedBytes -= data.length;
      if (this.head === this.queue.length) this.drop();
      else if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      this.sendNow(data);
    }
  }
}
