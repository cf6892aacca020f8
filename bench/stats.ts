/**
 * The middle value; of an even count, the mean of the two middle ones. (Until 2026-12-07 the upper
 * one: with four runs without auth that put `bench:auth`'s ratio at 1.37× where the median gives 1.54×.)
 */
export const median = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
