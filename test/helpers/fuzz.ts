/**
 * The property-based tests' settings: a fixed seed and a bounded number of runs, so `npm test`
 * is repeatable; FUZZ_SEED and FUZZ_RUNS override them, to search further by hand.
 */
export const FUZZ = { seed: Number(process.env.FUZZ_SEED ?? 20261204), numRuns: Number(process.env.FUZZ_RUNS ?? 500) };
