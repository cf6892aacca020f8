/**
 * Who may use nats-server: the broker closed to strangers (issue 25). Two users, each with a
 * password from a generated secret file:
 * - the replicas' user: the topics' subjects, JetStream's API and acknowledgements, the revocation
 *   bucket, and their own reply inboxes;
 * - backends that publish straight to NATS: publish on `<prefix>.>` only, and replies on an inbox
 *   prefix of their own (to hear JetStream's acknowledgement), so they read nothing of anyone's.
 * Anyone else is refused ("Authorization Violation"). Rendered into a file nats-server includes
 * (`--config`), the same in a container and as a local process.
 */

/** The users' names. */
export const BROKER_USERS = { replica: 'ws-replica', backend: 'ws-backend' } as const;

/** The secret files' names, in a deployment's secrets directory (certs/secrets.ts) or a local run's. */
export const BROKER_SECRET_FILES = {
  replica: 'nats-replica-password',
  backend: 'nats-backend-password',
  /** The rendered users (renderBrokerAuth), which hold both passwords. */
  config: 'nats-auth.conf',
} as const;

/** The inbox prefix a backend must connect with (nats.js `inboxPrefix`) to get JetStream's acknowledgements. */
export const BACKEND_INBOX_PREFIX = `_INBOX_${BROKER_USERS.backend}`;

export interface BrokerPasswords {
  readonly replica: string;
  readonly backend: string;
}

/** A double-quoted string in nats-server's config syntax (the passwords are base64url: nothing to escape, but checked). */
function quoted(text: string): string {
  if (!/^[A-Za-z0-9_.>*$-]+$/.test(text)) throw new Error(`not a safe nats-server config string: ${JSON.stringify(text)}`);
  return `"${text}"`;
}

const list = (items: string[]) => `[${items.map(quoted).join(', ')}]`;

/** The `authorization` block, with its permissions derived from the subject prefix and the stream's revocation bucket. */
export function renderBrokerAuth(o: { subjectPrefix: string; stream: string; passwords: BrokerPasswords }): string {
  const kv = `$KV.${o.stream}_REVOKED.>`;
  const replica = {
    publish: [`${o.subjectPrefix}.>`, '$JS.API.>', '$JS.ACK.>', '$JS.FC.>', kv, '_INBOX.>'],
    subscribe: [`${o.subjectPrefix}.>`, '_INBOX.>', kv],
  };
  return `# Rendered by ws-notifications (components/broker-auth.ts); holds passwords: mode 0600.
authorization {
  users = [
    { user: ${quoted(BROKER_USERS.replica)}, password: ${quoted(o.passwords.replica)}, permissions: { publish: { allow: ${list(replica.publish)} }, subscribe: { allow: ${list(replica.subscribe)} } } }
    { user: ${quoted(BROKER_USERS.backend)}, password: ${quoted(o.passwords.backend)}, permissions: { publish: { allow: ${list([`${o.subjectPrefix}.>`])} }, subscribe: { allow: ${list([`${BACKEND_INBOX_PREFIX}.>`])} } } }
  ]
}
`;
}
