import { ConfigError } from './errors';

/**
 * The exit codes of every entry point (the cdktf app, deploy, local, certs, the server, the load
 * client, the reload step): 0 done (or every threshold passed), 1 failed (a preflight check, a
 * breached threshold, a step that did not work), 2 a configuration error (the message names the
 * field), 3 interrupted, 4 inconclusive (a load run whose thresholds passed while the load
 * generator itself was the bottleneck: its numbers describe the client, not the system).
 */
export const EXIT = { ok: 0, failed: 1, config: 2, interrupted: 3, inconclusive: 4 } as const;

type ErrorClass = abstract new (...args: never[]) => Error;

/**
 * Prints what went wrong and returns the exit code: a ConfigError, or an error of one of the
 * `expected` classes (a failed preflight), is its message alone; anything else is a bug, shown
 * with its stack.
 */
export function reportFailure(error: unknown, expected: ErrorClass[] = []): number {
  if (error instanceof ConfigError) {
    console.error(error.message);
    return EXIT.config;
  }
  const known = error instanceof Error && expected.some((c) => error instanceof c);
  console.error(known ? (error as Error).message : error instanceof Error ? (error.stack ?? error.message) : String(error));
  return EXIT.failed;
}

/** Runs an entry point to completion and exits with its code, or with reportFailure's. */
export function runEntryPoint(main: () => number | Promise<number>, options: { expected?: ErrorClass[] } = {}): void {
  Promise.resolve()
    .then(main)
    .then(
      (code) => {
        process.exitCode = code;
        // Everything is closed by now; a stray timer must not keep the process alive.
        setTimeout(() => process.exit(code), 200).unref();
      },
      (error) => process.exit(reportFailure(error, options.expected)),
    );
}
