import { z } from 'zod';
import { fromEnv } from '../topology/server-env';

/** The development IdP's settings, as its process reads them. */
export const IDP_ENV = {
  port: 'WS_IDP_PORT',
  /** The bind address. @default every address */
  host: 'WS_IDP_HOST',
  /** The URL clients and replicas reach it at: its tokens' `iss`. */
  issuer: 'WS_IDP_ISSUER',
  /** The file holding the secret of both clients (and of its key-rotation endpoint). */
  secretFile: 'WS_IDP_SECRET_FILE',
  tokenTtlSeconds: 'WS_IDP_TOKEN_TTL_S',
  /** Origins of the notification page (comma-separated): its public client signs in from there. */
  pageOrigins: 'WS_IDP_PAGE_ORIGINS',
} as const;

export const idpSettingsSchema = z
  .object({
    issuer: z.string().url('must be the URL clients reach the provider at'),
    port: z.number().int().min(1).max(65535).default(8090),
    host: z.string().min(1).default('0.0.0.0'),
    secretFile: z.string().min(1, 'must name the file holding the clients’ secret'),
    tokenTtlSeconds: z.number().int().min(1).default(600),
    pageOrigins: z
      .array(
        z
          .string()
          .url()
          .refine((u) => new URL(u).origin === u, 'must be an origin such as https://localhost:8443'),
      )
      .default([]),
  })
  .strict();
export type IdpSettings = z.infer<typeof idpSettingsSchema>;

/** The settings from IDP_ENV; a bad or missing value is a ConfigError naming its variable. */
export function idpSettingsFromEnv(env: Record<string, string | undefined>): IdpSettings {
  return fromEnv(idpSettingsSchema, IDP_ENV, env, {}, 'identity provider environment');
}
