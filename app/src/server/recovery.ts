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

/**
 * How long a recovery keeps asking a broker that cannot answer before it says `recovered: false`:
 * after a node is lost the stream's leader is elected again and the replica reconnects, which
 * takes seconds; giving up at once would tell clients their history is gone when it is not.
 */
export const RECOVERY_PATIENCE_MS = 15_000;
/** The pause between two asks. */
const RECOVERY_RETRY_MS = 1_000;

/**
 * `ask()`'s answer, asked again a second apart while it throws, for at most `patienceMs` and only
 * while the answer is still wanted (the client may unsubscribe or leave); undefined if it never
 * answered. Each failure is passed to `onFailure` with whether another ask follows.
 */
export async function askPatiently<T>(
  ask: () => Promise<T>,
  wanted: () => boolean,
  onFailure: (error: unknown, retrying: boolean) => void,
  patienceMs = RECOVERY_PATIENCE_MS,
): Promise<T | undefined> {
  const deadline = performance.now() + patienceMs;
  for (;;) {
    try {
      return await ask();
    } catch (error) {
      const left = deadline - performance.now();
      const retrying = left > 0 && wanted();
      onFailure(error, retrying);
      if (!retrying) return undefined;
      await new Promise((r) => setTimeout(r, Math.min(RECOVERY_RETRY_MS, left)));
    }
  }
}
