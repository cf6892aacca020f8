import { isAbsolute, resolve } from 'node:path';
import type { Topology } from '../app/src/topology';

/**
 * Absolute host paths the stack needs. Terraform runs in cdktf.out/stacks/<stack>, so every
 * path it sees must be absolute; tests replace the root with a placeholder in snapshots.
 */
export interface ProjectPaths {
  /** The repository root. */
  readonly root: string;
  /** Certificates (bind-mounted read-only; never uploaded, so keys stay out of state). */
  readonly certsDir: string;
  /** The broker's and the development IdP's secrets (certs/secrets.ts): bind-mounted file by file. */
  readonly secretsDir: string;
  /** Live files of a deployment (the proxy's rendered config), written at apply time. */
  readonly deployDir: string;
  /** The notification page's files (web/build.ts: installPage, by scripts/deploy.ts), mounted by the proxies. */
  readonly pageDir: string;
  /** Where the load-client job writes its report. */
  readonly reportsDir: string;
}

export function projectPaths(root: string, topology: Topology): ProjectPaths {
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(root, p));
  return {
    root,
    certsDir: abs(topology.tls.dir),
    secretsDir: resolve(root, '.secrets', topology.name),
    deployDir: resolve(root, '.deploy', topology.name),
    pageDir: resolve(root, '.deploy', topology.name, 'page'),
    reportsDir: resolve(root, 'reports'),
  };
}
