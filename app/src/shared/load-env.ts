/**
 * Environment variables the load client reads when it runs as a job container; each mirrors a
 * CLI flag. The stack writes them, the client reads them: the names live only here.
 */
export const LOAD_ENV = {
  url: 'LOAD_URL',
  ca: 'LOAD_CA',
  insecure: 'LOAD_INSECURE',
  /** The whole load profile as JSON (validated by the same schema as --profile files). */
  profile: 'LOAD_PROFILE',
  report: 'LOAD_REPORT',
  html: 'LOAD_HTML',
  metricsPort: 'LOAD_METRICS_PORT',
} as const;
