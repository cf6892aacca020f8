/** The middle value (the upper one of an even count): how the benches summarize repeated runs. */
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
