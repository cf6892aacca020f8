/**
 * The seam of a recovery: the replay (from the stream, up to its last offset when the
 * subscription was registered) and the live notifications held meanwhile overlap when the
 * replica's own consumer delivered some of the replayed ones live. Merged by offset: each once,
 * in order, none at or below what the client already had.
 */
export function mergeAtSeam<N extends { offset?: number }>(replay: N[], held: N[], since: number): N[] {
  const out: N[] = [];
  let last = since;
  for (const n of [...replay, ...held]) {
    const offset = n.offset ?? 0;
    if (offset <= last) continue;
    out.push(n);
    last = offset;
  }
  return out;
}
