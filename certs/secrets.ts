import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Topology } from '../app/src/topology';
import { BROKER_SECRET_FILES, renderBrokerAuth } from '../components/broker-auth';
import { IDP_SECRET_FILE } from '../components/idp';
import { ensureSecret } from './generate';

/** Where a deployment's service secrets are, in their directory (stacks/paths.ts: secretsDir). */
export function serviceSecretFiles(dir: string) {
  return {
    broker: {
      replica: join(dir, BROKER_SECRET_FILES.replica),
      backend: join(dir, BROKER_SECRET_FILES.backend),
      config: join(dir, BROKER_SECRET_FILES.config),
    },
    idp: join(dir, IDP_SECRET_FILE),
  };
}

/** A fresh secret as a file holds it: 24 random bytes, base64url (nothing to escape in any config), and a newline. */
export const newSecret = (): string => `${randomBytes(24).toString('base64url')}\n`;

/**
 * The broker users' passwords, made when missing, and the users' file nats-server reads, rendered
 * each time (the subjects may have changed; 0600: nats-server runs as root, or as this user
 * locally). `replicaMode`: 0644 where an unprivileged container user reads the replicas' password
 * through a bind mount (inside a 0700 directory, like the control key), 0600 otherwise.
 */
export function ensureBrokerCredentials(
  dir: string,
  broker: { subjectPrefix: string; stream: string },
  o: { replicaMode: number; force?: boolean },
): { replica: string; backend: string; config: string } {
  const files = serviceSecretFiles(dir).broker;
  ensureSecret(files.replica, newSecret, o.replicaMode, o.force);
  ensureSecret(files.backend, newSecret, 0o600, o.force);
  const passwords = { replica: readFileSync(files.replica, 'utf8').trim(), backend: readFileSync(files.backend, 'utf8').trim() };
  writeFileSync(files.config, renderBrokerAuth({ ...broker, passwords }), { mode: 0o600 });
  chmodSync(files.config, 0o600);
  return files;
}

/**
 * The broker's and the development IdP's secrets, made once and kept (like the TLS keys) in a
 * directory of their own, so the proxy, which mounts the certificates, never sees them: the
 * broker users' (ensureBrokerCredentials) and the IdP clients' secret (0644 inside the 0700
 * directory: the ws-idp container's user reads it through a bind mount).
 */
export function ensureServiceSecrets(topology: Topology, dir: string, force = false): ReturnType<typeof serviceSecretFiles> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const { subjectPrefix, stream } = topology.broker;
  ensureBrokerCredentials(dir, { subjectPrefix, stream }, { replicaMode: 0o644, force });
  const files = serviceSecretFiles(dir);
  ensureSecret(files.idp, newSecret, 0o644, force);
  return files;
}
