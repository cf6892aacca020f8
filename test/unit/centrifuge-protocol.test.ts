import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCommands } from '../../app/src/shared/centrifuge';

describe("Centrifugo's command parser", () => {
  it('reads one command per line, skipping blank ones; an empty object is a pong', () => {
    const parsed = parseCommands(
      '{"id":1,"connect":{"token":"t"}}\n\n{"id":2,"subscribe":{"channel":"news","recover":true,"offset":7,"epoch":"e"}}\n{}',
    );
    assert.deepEqual(parsed, {
      ok: true,
      commands: [
        { id: 1, kind: 'connect', token: 't' },
        { id: 2, kind: 'subscribe', request: { channel: 'news', epoch: 'e', offset: 7, recover: true } },
        { id: 0, kind: 'pong' },
      ],
    });
  });

  it('maps what is not built to "unsupported", and history to its fields', () => {
    const parsed = parseCommands(
      '{"id":3,"presence":{"channel":"a"}}\n{"id":4,"history":{"channel":"a","limit":5,"since":{"offset":2,"epoch":"e"},"reverse":true}}',
    );
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.commands, [
      { id: 3, kind: 'unsupported', method: 'presence' },
      { id: 4, kind: 'history', channel: 'a', limit: 5, since: { offset: 2, epoch: 'e' }, reverse: true },
    ]);
  });

  it('refuses the whole frame for any bad command, saying why', () => {
    for (const [frame, problem] of [
      ['not json', /JSON|Unexpected/],
      ['[1]', /object/],
      ['{"id":1,"connect":{},"subscribe":{"channel":"a"}}', /one request, not connect and subscribe/],
      ['{"id":1}', /one request/],
      ['{"id":-1,"ping":{}}', /id/],
      ['{"id":1,"subscribe":{"channel":"a..b"}}', /channel must match/],
      ['{"id":1,"subscribe":{"channel":"a","offset":-2}}', /offset/],
      ['{"id":1,"publish":{"channel":"a"}}', /data is required/],
      ['{"id":1,"connect":{"token":5}}', /token must be a string/],
      ['', /empty frame/],
    ] as const) {
      const parsed = parseCommands(frame);
      assert.equal(parsed.ok, false, frame);
      assert.match((parsed as { problem: string }).problem, problem, frame);
    }
  });
});
