/**
 * An argv as one line of `sh -c`, for containers that start more than one process or read a
 * value Swarm templates into the environment. Only words with blanks or `;` are quoted; anything
 * else (a "$VAR" the shell is meant to expand) passes as written.
 */
export function shellLine(argv: readonly string[]): string {
  return argv.map((word) => (/[\s;]/.test(word) ? `'${word.replace(/'/g, `'\\''`)}'` : word)).join(' ');
}
