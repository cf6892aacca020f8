/**
 * JSON nested deeper than this is refused wherever it enters a replica: a client's message, the
 * publish API's body, and what the broker consumer reads from the stream. `JSON.parse` takes any
 * depth, but `JSON.stringify` (and every recursive walk) throws RangeError at a few thousand
 * levels, so a deep value stored once would fail every replica that delivers or replays it.
 * Notifications have no use for more than a few levels.
 */
export const MAX_JSON_DEPTH = 64;

export type JsonParse = { ok: true; value: unknown } | { ok: false; problem: 'not_json' | 'too_deep'; message: string };

/**
 * Parses JSON text of at most `maxDepth` nested arrays and objects; never throws. The depth is
 * counted on the text before parsing, in one pass without recursion, so an over-deep input
 * costs no allocation. No JSON library bounds depth (V8's parser is iterative and accepts any),
 * hence these few lines.
 */
export function parseJson(text: string, maxDepth = MAX_JSON_DEPTH): JsonParse {
  if (nestingExceeds(text, maxDepth)) return { ok: false, problem: 'too_deep', message: `nested deeper than ${maxDepth} levels` };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, problem: 'not_json', message: 'not valid JSON' };
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;

/** Whether brackets outside strings nest deeper than `maxDepth` anywhere in `text`. */
export function nestingExceeds(text: string, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > maxDepth) return true;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) depth--;
  }
  return false;
}
