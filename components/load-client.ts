import { proxyHost, type Topology } from '../app/src/topology';
import { LOAD_ENV } from '../app/src/shared/load-env';
import { loadTokensSchema } from '../app/src/shared/profile';
import type { ComponentSpec } from './spec';

/**
 * How the load client starts: `built`, the compiled client the app image runs; `source`, the
 * TypeScript through tsx (relative to the repository's root), as the local runner runs it.
 */
export const CLIENT_ARGV = {
  built: ['node', 'dist/client/main.js'],
  source: ['node', '--import', 'tsx', 'app/src/client/main.ts'],
} as const;

export const REPORT_FILE = 'load-report.json';
export const HTML_REPORT_FILE = 'load-report.html';

/** Seconds the job may run past the profile's own limit before `timeout` kills it. */
const JOB_GRACE_SECONDS = 60;

/** The job's whole limit: `timeout` bounds it even if the client hangs, so an apply always ends. */
export function jobLimitSeconds(load: Topology['load']): number {
  return Math.ceil((load.maxDurationMs + load.settleMs) / 1000) + JOB_GRACE_SECONDS;
}

export interface LoadJobLaunch {
  /** The proxy's host as the job reaches it. @default the pair's virtual address with proxy.ha, else the proxy's name */
  readonly proxyHost?: string;
  /** The proxy's TLS port as the job reaches it. */
  readonly httpsPort: number;
  /** Where the CA certificate is. */
  readonly caFile: string;
  /** The directory the reports are written to. */
  readonly reportsDir: string;
  /**
   * The provider each virtual user takes its token from, and where the job reads the client
   * secret: the deployment's development IdP (its lifetime stays the profile's).
   * @default the profile's own `tokens`, if any
   */
  readonly tokens?: { readonly issuer: string; readonly secretFile: string };
  /**
   * Where the job reads the publish API's key, with the profile's publishApi (a mount in a container).
   * @default the profile's own keyFile
   */
  readonly publishApiKeyFile?: string;
}

/**
 * The load client as a one-shot job through the proxy over WSS, the topology's profile in its
 * environment (LOAD_ENV), its reports in a directory, scraped live by Prometheus when monitoring
 * is on. SIGTERM ends a run early: it settles and writes its report.
 */
export function loadJobSpec(topology: Topology, o: LoadJobLaunch): ComponentSpec {
  const { proxy, server, monitoring } = topology;
  const withTokens = o.tokens
    ? { ...topology.load, tokens: loadTokensSchema.parse({ ...topology.load.tokens, ...o.tokens }) }
    : topology.load;
  const load = withTokens.publishApi && o.publishApiKeyFile ? { ...withTokens, publishApi: { keyFile: o.publishApiKeyFile } } : withTokens;
  return {
    argv: ['timeout', '--kill-after=10s', `${jobLimitSeconds(load)}s`, ...CLIENT_ARGV.built],
    env: {
      [LOAD_ENV.url]: `wss://${o.proxyHost ?? proxyHost(proxy)}:${o.httpsPort}${server.path}`,
      [LOAD_ENV.ca]: o.caFile,
      [LOAD_ENV.profile]: JSON.stringify(load),
      [LOAD_ENV.report]: `${o.reportsDir}/${REPORT_FILE}`,
      [LOAD_ENV.html]: `${o.reportsDir}/${HTML_REPORT_FILE}`,
      ...(monitoring.enabled ? { [LOAD_ENV.metricsPort]: String(monitoring.loadMetricsPort) } : {}),
    },
    ...(monitoring.enabled ? { ports: { metrics: monitoring.loadMetricsPort } } : {}),
    stop: { signal: 'SIGTERM', graceMs: 10_000 },
  };
}
