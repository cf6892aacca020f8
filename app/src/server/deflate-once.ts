import { constants, deflateRawSync } from 'node:zlib';
import { DEFLATE_OPTIONS } from './compression';

/**
 * permessage-deflate (RFC 7692) done once per message instead of once per connection.
 *
 * With no context takeover a compressed message depends only on itself, so one publication's
 * deflated bytes are valid for every connection that negotiated our window (ws accepts no offer
 * below DEFLATE_OPTIONS.serverMaxWindowBits, so every negotiated connection has it). ws cannot send
 * bytes that are already deflated: `send` runs the connection's own deflate stream, kept for the
 * connection's life (with the inflate stream, ~111 KB a connection: docs/compression.md), and its
 * frame writer is internal. Hence the frame header below, the one piece of RFC 6455 written here.
 */

/** The empty stored block a sync flush ends with; RFC 7692 7.2.1 strips it from the message. */
const SYNC_TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const NEWLINE = Buffer.from('\n');
const ZLIB = {
  level: DEFLATE_OPTIONS.zlibDeflateOptions?.level,
  memLevel: DEFLATE_OPTIONS.zlibDeflateOptions?.memLevel,
  windowBits: DEFLATE_OPTIONS.serverMaxWindowBits as number,
  finishFlush: constants.Z_SYNC_FLUSH,
};
const THRESHOLD = DEFLATE_OPTIONS.threshold ?? 1024;

/**
 * One outgoing text message: its bytes, and its deflated body, made on first need and then shared
 * by every connection it goes to. A message of several lines (a Centrifugo batch) is built from
 * its lines' own deflated blocks, so a publication is deflated once however it is batched.
 */
export class Payload {
  private joined?: Buffer;
  private block?: Buffer | null;
  private body?: Buffer | null;
  private textFrame?: Buffer;
  private deflatedFrame?: Buffer;

  private constructor(
    private readonly bytes: Buffer | undefined,
    private readonly lines: readonly Payload[] = [],
  ) {}

  static of(text: Buffer): Payload {
    return new Payload(text);
  }

  /** The lines joined by newlines, as one message. */
  static lines(lines: readonly Payload[]): Payload {
    return lines.length === 1 ? lines[0] : new Payload(undefined, lines);
  }

  /** Bytes of the text. */
  get length(): number {
    return this.bytes?.length ?? this.lines.reduce((sum, l) => sum + l.length + 1, -1);
  }

  /** The UTF-8 text, as sent to a connection without compression. */
  get text(): Buffer {
    return this.bytes ?? (this.joined ??= Buffer.concat(this.lines.flatMap((l, i) => (i === 0 ? [l.text] : [NEWLINE, l.text]))));
  }

  /** The compressed body for a frame with RSV1 set; null where deflate does not pay (small or incompressible). */
  get deflated(): Buffer | null {
    if (this.body === undefined) this.body = this.bytes ? (this.syncBlock()?.subarray(0, -SYNC_TAIL.length) ?? null) : this.joinBlocks();
    return this.body;
  }

  /**
   * The whole frame, header and body in one buffer, made once and then written as is to every
   * connection it goes to: compressed (RSV1, the deflated body, which must exist) or as text.
   */
  frame(compressed: boolean): Buffer {
    if (compressed) return (this.deflatedFrame ??= framed(this.deflated!, true));
    return (this.textFrame ??= framed(this.text, false));
  }

  /** Deflate blocks ending in a sync flush (byte-aligned, so other blocks may follow), or null. */
  private syncBlock(): Buffer | null {
    if (this.block !== undefined) return this.block;
    const text = this.text;
    if (text.length < THRESHOLD) return (this.block = null);
    const block = syncDeflate(text);
    return (this.block = block.length < text.length ? block : null);
  }

  /** Each line's blocks (stored where it has none), stored newlines between, as one message body. */
  private joinBlocks(): Buffer | null {
    const blocks = this.lines.map((l) => l.syncBlock());
    if (blocks.every((b) => b === null)) return null;
    const parts = blocks.flatMap((b, i) => [...(i === 0 ? [] : [storedBlock(NEWLINE)]), b ?? storedBlock(this.lines[i].text)]);
    // The body ends right after the last block's BTYPE bits: strip a sync tail, or start an empty stored block.
    const last = blocks[blocks.length - 1];
    return last ? Buffer.concat(parts).subarray(0, -SYNC_TAIL.length) : Buffer.concat([...parts, Buffer.alloc(1)]);
  }
}

/** `data` as deflate blocks ending in a sync flush, with our window and level. */
export function syncDeflate(data: Buffer): Buffer {
  return deflateRawSync(data, ZLIB);
}

/** `data` as stored (uncompressed) deflate blocks, not final (RFC 1951 3.2.4): 65,535 bytes at most each. */
export function storedBlock(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  do {
    const chunk = data.subarray(at, at + 0xffff);
    const header = Buffer.alloc(5);
    header.writeUInt16LE(chunk.length, 1);
    header.writeUInt16LE(~chunk.length & 0xffff, 3);
    parts.push(header, chunk);
    at += 0xffff;
  } while (at < data.length);
  return Buffer.concat(parts);
}

/** A server's (unmasked) header for one final text frame; RSV1 marks a compressed body (RFC 6455 5.2). */
export function textFrameHeader(length: number, compressed: boolean): Buffer {
  const first = 0x81 | (compressed ? 0x40 : 0);
  if (length < 126) return Buffer.from([first, length]);
  if (length < 0x10000) {
    const header = Buffer.from([first, 126, 0, 0]);
    header.writeUInt16BE(length, 2);
    return header;
  }
  const header = Buffer.alloc(10);
  header[0] = first;
  header[1] = 127;
  header.writeBigUInt64BE(BigInt(length), 2);
  return header;
}

/** One final text frame, its header and body in one buffer. */
function framed(body: Buffer, compressed: boolean): Buffer {
  return Buffer.concat([textFrameHeader(body.length, compressed), body]);
}
