/**
 * Durations as people type them: plain seconds ("30"), or a number with a unit
 * ("250ms", "30s", "5m", "1h"). Returned in milliseconds.
 */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function parseDuration(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!match) {
    throw new Error(`"${text}" is not a duration (use plain seconds or a unit: 250ms, 30s, 5m, 1h)`);
  }
  const ms = Number(match[1]) * UNIT_MS[match[2] ?? 's'];
  return Math.round(ms);
}

/** Renders milliseconds the way nginx accepts them, preferring whole seconds. */
export function nginxDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** Renders milliseconds as a Prometheus duration (1m, 5s, 250ms), the largest whole unit. */
export function prometheusDuration(ms: number): string {
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms > 0 && ms % size === 0) return `${ms / size}${unit}`;
  }
  return ms === 0 ? '0s' : `${ms}ms`;
}
