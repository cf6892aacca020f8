import { IDP_ENV } from '../app/src/idp/settings';
import type { ComponentSpec } from './spec';

/** How the development IdP starts: compiled (the app image's, the local runner's build), or its TypeScript through tsx. */
export const IDP_ARGV = {
  built: ['node', 'dist/idp/main.js'],
  source: ['node', '--import', 'tsx', 'app/src/idp/main.ts'],
} as const;

/** The clients' secret file's name, in a deployment's secrets directory (certs/secrets.ts) or a local run's. */
export const IDP_SECRET_FILE = 'idp-secret';

export interface IdpLaunch {
  /** The URL replicas and clients reach it at (its tokens' `iss`). */
  readonly issuer: string;
  readonly port: number;
  /** @default every address */
  readonly host?: string;
  /** Where it reads the clients' secret. */
  readonly secretFile: string;
  /** @default 'built' */
  readonly from?: keyof typeof IDP_ARGV;
  /** Origins the notification page is served at: its public client may sign in from there. @default none */
  readonly pageOrigins?: readonly string[];
}

/**
 * The development OpenID provider (oidc-provider, app/src/idp), the same as a container and as a
 * local process: discovery at /.well-known/openid-configuration, which is also its health.
 */
export function idpSpec(o: IdpLaunch): ComponentSpec {
  return {
    argv: IDP_ARGV[o.from ?? 'built'],
    env: {
      [IDP_ENV.issuer]: o.issuer,
      [IDP_ENV.port]: String(o.port),
      [IDP_ENV.secretFile]: o.secretFile,
      ...(o.host ? { [IDP_ENV.host]: o.host } : {}),
      ...(o.pageOrigins?.length ? { [IDP_ENV.pageOrigins]: o.pageOrigins.join(',') } : {}),
    },
    ports: { http: o.port },
    health: { url: `http://127.0.0.1:${o.port}/.well-known/openid-configuration`, probe: 'node', startPeriodMs: 5_000, retries: 3 },
  };
}
