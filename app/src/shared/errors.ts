import type { z } from 'zod';

/** A configuration that failed validation; the message names every bad field and its rule. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: { field: string; rule: string }[],
  ) {
    super(`invalid ${source}:\n${problems.map((p) => `  - ${p.field}: ${p.rule}`).join('\n')}`);
    this.name = 'ConfigError';
  }

  static fromZod(source: string, error: z.ZodError, prefix = ''): ConfigError {
    return new ConfigError(
      source,
      error.issues.map((issue) => ({
        field: prefix + (issue.path.length ? issue.path.join('.') : '(root)'),
        rule: issue.message,
      })),
    );
  }
}
