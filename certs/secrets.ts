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

const password = () => `${randomBytes(24).toString('base64url')}\n`;

/**
 * The broker's and the development IdP's secrets, made once and kept (like the TLS keys) in a
 * directory of their own, so the proxy, which mounts the certificates, never sees them:
 * - the broker users' passwords (components/broker-auth.ts), and the users' file nats-server
 *   reads (rewritten each time: the topology's subjects may have changed; 0600, nats-server runs
 *   as root);
 * - the IdP clients' secret.
 * Files an unprivileged container user reads through a bind mount (the replicas' password, the
 * IdP secret) are 0644 inside the 0700 directory, like the control key.
 */
export function ensureServiceSecrets(topology: Topology, dir: string, force = false): ReturnType<typeof serviceSecretFiles> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const files = serviceSecretFiles(dir);
  ensureSecret(files.broker.replica, password, 0o644, force);
  ensureSecret(files.broker.backend, password, 0o600, force);
  const passwords = {
    replica: readFileSync(files.broker.replica, 'utf8').trim(),
    backend: readFileSync(files.broker.backend, 'utf8').trim(),
  };
  const { subjectPrefix, stream } = topology.broker;
  writeFileSync(files.broker.config, renderBrokerAuth({ subjectPrefix, stream, passwords }), { mode: 0o600 });
  chmodSync(files.broker.config, 0o600);
  ensureSecret(files.idp, password, 0o644, force);
  return files;
}
