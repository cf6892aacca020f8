import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { constants, inflateRawSync } from 'node:zlib';
import WebSocket from 'ws';
import { Payload, storedBlock, syncDeflate, textFrameHeader } from '../../app/src/server/deflate-once';

/** ws's frame parser: exported by ws, missing from its type definitions. */
const { Receiver } = WebSocket as unknown as {
  Receiver: new (options: {
    isServer: boolean;
    maxPayload: number;
  }) => NodeJS.WritableStream & {
    on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): void;
    on(event: 'error', listener: (err: Error) => void): void;
  };
};

/** What a receiver does with a message body (RFC 7692 7.2.2): append the sync tail, inflate. */
function inflateBody(body: Buffer): string {
  return inflateRawSync(Buffer.concat([body, Buffer.from([0, 0, 0xff, 0xff])]), {
    windowBits: 10,
    finishFlush: constants.Z_SYNC_FLUSH,
  }).toString();
}

const json = (n: number, size: number) =>
  JSON.stringify({ push: { channel: `t${n}`, pub: { data: { text: 'commit '.repeat(size / 7), n } } } });

describe('deflate once: RFC 7692 frames built without a per-connection stream', () => {
  it('matches the RFC 7692 examples: "Hello" compressed (7.2.3.1) and in a stored block (7.2.3.3)', () => {
    const compressed = syncDeflate(Buffer.from('Hello')).subarray(0, -4);
    assert.deepEqual(
      Buffer.concat([textFrameHeader(compressed.length, true), compressed]),
      Buffer.from([0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]),
    );
    const stored = Buffer.concat([storedBlock(Buffer.from('Hello')), Buffer.alloc(1)]);
    assert.deepEqual(
      Buffer.concat([textFrameHeader(stored.length, true), stored]),
      Buffer.from([0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00]),
    );
  });

  it("frame headers of every length form parse in ws's own receiver, RSV1 and all", async () => {
    for (const size of [0, 125, 126, 65_535, 65_536, 200_000]) {
      const body = Buffer.alloc(size, 0x61);
      const receiver = new Receiver({ isServer: false, maxPayload: 0 });
      const got: Buffer[] = [];
      let error: Error | undefined;
      receiver.on('message', (data: Buffer) => got.push(data));
      receiver.on('error', (e: Error) => (error = e));
      receiver.write(Buffer.concat([textFrameHeader(size, false), body]));
      await new Promise(setImmediate);
      assert.equal(error, undefined, `size ${size}`);
      assert.equal(got[0]?.length, size);
      // Without the extension negotiated, RSV1 must be refused: the bit is where RFC 6455 puts it.
      const strict = new Receiver({ isServer: false, maxPayload: 0 });
      let refused: Error | undefined;
      strict.on('error', (e: Error) => (refused = e));
      strict.write(Buffer.concat([textFrameHeader(size, true), body]));
      await new Promise(setImmediate);
      assert.match(String(refused), /RSV1 must be clear/);
    }
  });

  it('a payload is deflated once, and shared: the same bytes for every caller', () => {
    const p = Payload.of(Buffer.from(json(1, 2000)));
    const body = p.deflated;
    assert.ok(body && body.length < p.length / 4, `shrinks: ${body?.length} of ${p.length}`);
    assert.equal(p.deflated, body, 'the same buffer, not deflated again');
    assert.equal(inflateBody(body), p.text.toString());
  });

  it("a payload's whole frame is built once, shared, and parses in ws's receiver, as text or compressed", async () => {
    const p = Payload.of(Buffer.from(json(1, 2000)));
    for (const compressed of [false, true]) {
      const frame = p.frame(compressed);
      assert.equal(p.frame(compressed), frame, 'the same buffer for every connection');
      assert.deepEqual(frame.subarray(-(compressed ? p.deflated! : p.text).length), compressed ? p.deflated : p.text);
    }
    const receiver = new Receiver({ isServer: false, maxPayload: 0 });
    const got: string[] = [];
    receiver.on('message', (data: Buffer) => got.push(data.toString()));
    receiver.write(p.frame(false));
    await new Promise(setImmediate);
    assert.deepEqual(got, [p.text.toString()]);
    const compressed = p.frame(true);
    assert.equal(compressed[0], 0xc1, 'FIN, RSV1, text');
    assert.equal(inflateBody(compressed.subarray(compressed.length - p.deflated!.length)), p.text.toString());
  });

  it('small or incompressible messages go uncompressed (null)', () => {
    assert.equal(Payload.of(Buffer.from('{"id":1}')).deflated, null);
    assert.equal(Payload.of(randomBytes(600)).deflated, null);
  });

  it("a batch of lines is built from each line's own blocks and inflates to the lines joined by newlines", () => {
    const a = Payload.of(Buffer.from(json(1, 1500)));
    const small = Payload.of(Buffer.from('{"id":7,"publish":{}}'));
    const b = Payload.of(Buffer.from(json(2, 3000)));
    for (const lines of [
      [a, small, b],
      [a, b],
      [small, a],
      [a, small],
      [small, b, small],
    ]) {
      const batch = Payload.lines(lines);
      const expected = lines.map((l) => l.text.toString()).join('\n');
      assert.equal(batch.text.toString(), expected);
      assert.equal(batch.length, Buffer.byteLength(expected));
      assert.equal(inflateBody(batch.deflated!), expected);
    }
    assert.equal(Payload.lines([small, small]).deflated, null, 'nothing in it pays');
    assert.equal(Payload.lines([a]), a);
  });

  it('stored blocks split past 65,535 bytes', () => {
    const big = Buffer.alloc(150_000, 0x7a);
    assert.equal(inflateBody(Buffer.concat([storedBlock(big), Buffer.alloc(1)])), big.toString());
  });
});
