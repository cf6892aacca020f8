import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MAX_JSON_DEPTH, nestingExceeds, parseJson } from '../../app/src/shared/json';
import {
  BROKER_ERROR_CODE,
  BROKER_UNKNOWN_CODE,
  ERROR_CODES,
  parseClientMessage,
  SUBSCRIPTION_LIMIT_CODES,
  TOPIC_PATTERN,
} from '../../app/src/shared/protocol';
import { plainPath } from '../../app/src/server/server';
import { decodeStored } from '../../app/src/server/broker';
import { FUZZ } from '../helpers/fuzz';

/**
 * Property-based tests of what parses untrusted input (settings: test/helpers/fuzz.ts): whatever
 * comes in, nothing throws and every answer is one of the documented ones.
 */
const DOCUMENTED_CODES = new Set<string>([...ERROR_CODES, ...SUBSCRIPTION_LIMIT_CODES, BROKER_ERROR_CODE, BROKER_UNKNOWN_CODE]);

/** JSON nested `depth` levels, in arrays and objects mixed, with strings that hold brackets. */
const nested = fc
  .tuple(fc.integer({ min: 0, max: 200 }), fc.array(fc.boolean(), { minLength: 200, maxLength: 200 }), fc.string())
  .map(([depth, kinds, text]) => {
    let v: unknown = text;
    for (let i = 0; i < depth; i++) v = kinds[i] ? [v, '[{'] : { k: v, '}]': 1 };
    return { depth, text: JSON.stringify(v) };
  });

/** A message near the protocol's shapes: right types, wrong types, missing and extra fields. */
const messageLike = fc.record(
  {
    type: fc.oneof(fc.constantFrom('echo', 'subscribe', 'unsubscribe', 'publish', 'nope', ''), fc.anything()),
    topic: fc.oneof(fc.constantFrom('news', 'a.b', 'a..b', '.a', 'a.', '', 'x'.repeat(129)), fc.string(), fc.anything()),
    since: fc.oneof(
      fc.record({
        offset: fc.oneof(fc.integer(), fc.double(), fc.constant(Number.MAX_SAFE_INTEGER + 2), fc.anything()),
        epoch: fc.oneof(fc.string(), fc.anything()),
      }),
      fc.anything(),
    ),
    id: fc.oneof(fc.integer(), fc.string({ maxLength: 200 }), fc.anything()),
    ts: fc.oneof(fc.double(), fc.anything()),
    data: fc.anything(),
    payload: fc.oneof(fc.string(), fc.anything()),
  },
  { requiredKeys: [] },
);

describe('fuzzing the parsers (fast-check, fixed seed)', () => {
  it('parseClientMessage never throws, and answers a valid message or a documented code', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.json(),
          messageLike.map((m) => JSON.stringify(m) ?? ''),
          nested.map((n) => `{"type":"publish","topic":"t","data":${n.text}}`),
        ),
        (text) => {
          const r = parseClientMessage(text);
          if (!r.ok) return DOCUMENTED_CODES.has(r.code) && typeof r.message === 'string';
          const m = r.message;
          if (m.type === 'subscribe' && m.since) assert.ok(Number.isSafeInteger(m.since.offset) && m.since.offset >= 0);
          if ('topic' in m) assert.match(m.topic, TOPIC_PATTERN);
          // What is accepted can be encoded again: nothing downstream meets a RangeError.
          JSON.stringify(m);
          return true;
        },
      ),
      FUZZ,
    );
  });

  it('the depth bound holds exactly: a value parses if and only if it nests at most MAX_JSON_DEPTH deep', () => {
    fc.assert(
      fc.property(nested, ({ depth, text }) => {
        // Each level adds one bracket; the innermost string adds none.
        const r = parseJson(text);
        assert.equal(r.ok, depth <= MAX_JSON_DEPTH, `depth ${depth}`);
        assert.equal(nestingExceeds(text, depth), false);
        if (depth > 0) assert.equal(nestingExceeds(text, depth - 1), true);
      }),
      FUZZ,
    );
  });

  it('brackets inside strings, and escaped quotes, never count as nesting', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        const text = JSON.stringify({ s: `${s}[[[[{{{{\\"]]` });
        assert.equal(nestingExceeds(text, 1), false);
      }),
      FUZZ,
    );
  });

  it('TOPIC_PATTERN takes exactly dot-separated non-empty names of the allowed characters, 128 at most', () => {
    const name = fc.stringMatching(/^[A-Za-z0-9_:-]{1,20}$/);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.array(name, { minLength: 1, maxLength: 8 }).map((ns) => ns.join('.')),
          fc.string({ maxLength: 140 }),
        ),
        (topic) => {
          const expected = topic.length >= 1 && topic.length <= 128 && topic.split('.').every((n) => /^[A-Za-z0-9_:-]+$/.test(n));
          assert.equal(TOPIC_PATTERN.test(topic), expected, topic);
        },
      ),
      FUZZ,
    );
  });

  it('plainPath refuses every path a router could read two ways, and keeps plain ones', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constantFrom('.', '..', '', '%2e', 'internal', 'api', 'publish'), fc.stringMatching(/^[a-z0-9_-]{1,8}$/)), {
          maxLength: 6,
        }),
        (segments) => {
          const path = `/${segments.join('/')}`;
          // An empty segment is a doubled slash, except a trailing one.
          const plain = !segments.some((s, i) => s === '.' || s === '..' || (s === '' && i < segments.length - 1) || s.includes('%'));
          assert.equal(plainPath(path) !== undefined, plain, path);
          if (plainPath(path)) assert.equal(new URL(path, 'http://x').pathname, path, 'the normalized form is the same path');
        },
      ),
      FUZZ,
    );
  });

  it('decodeStored never throws on whatever a stream may hold', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.json(),
          nested.map((n) => `{"data":${n.text}}`),
          messageLike.map((m) => JSON.stringify(m) ?? ''),
        ),
        (text) => {
          const d = decodeStored(text);
          if (typeof d === 'string') return ['undecodable', 'invalid'].includes(d);
          JSON.stringify(d);
          return d.id === undefined || typeof d.id === 'number' || d.id.length <= 128;
        },
      ),
      FUZZ,
    );
  });
});
