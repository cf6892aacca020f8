import { BACKEND_CLIENT } from '../app/src/idp/clients';
import { DEV_AUDIENCE, type AuthConfig } from '../app/src/topology';
import { PAGE_CLIENT } from '../app/src/idp/clients';

/**
 * A Keycloak realm import (`kc.sh import --file`, or the admin console's "Partial import") for a
 * topology's `auth`: the roles its grants read, a confidential client for backends whose service
 * account holds the roles that may publish, a public client for browser applications (code flow
 * with PKCE), and an audience mapper on both so tokens carry `aud` = auth.audience. Field names
 * are Keycloak's RealmRepresentation (keycloak.org, "Importing and exporting realms"). No secret
 * is written: Keycloak generates the backend client's on import.
 */
export interface KeycloakRealm {
  realm: string;
  enabled: true;
  roles: { realm: KeycloakRole[]; client: Record<string, KeycloakRole[]> };
  clients: Record<string, unknown>[];
  users: Record<string, unknown>[];
}

interface KeycloakRole {
  name: string;
  description: string;
}

/** The browser applications' client: the notification page's (proxy.page.clientId) unless told otherwise. */
export const WEB_CLIENT = PAGE_CLIENT;

/** The claims Keycloak puts roles in: realm roles, and each client's roles. */
const REALM_ROLES = 'realm_access.roles';
const CLIENT_ROLES = /^resource_access\.([A-Za-z0-9_-]+)\.roles$/;

export interface RealmOptions {
  /** @default the name in auth.issuer's `/realms/<name>`, else "ws-notifications" */
  readonly realm?: string;
  /** The browser client's id: the page's, proxy.page.clientId. @default WEB_CLIENT */
  readonly webClient?: string;
  /** Where the browser client may return after login. @default ['https://localhost/*'] */
  readonly redirectUris?: readonly string[];
}

/** The realm name auth.issuer names (`https://host/realms/<name>`), if it is a Keycloak issuer. */
export function realmOfIssuer(issuer: string | undefined): string | undefined {
  const name = issuer && /\/realms\/([^/]+)\/?$/.exec(new URL(issuer).pathname)?.[1];
  return name ? decodeURIComponent(name) : undefined;
}

/** The realm, and the grants it cannot express (a claim other than Keycloak's role claims). */
export function renderKeycloakRealm(auth: AuthConfig, o: RealmOptions = {}): { realm: KeycloakRealm; unmapped: string[] } {
  const realmRoles = new Map<string, KeycloakRole>();
  const clientRoles = new Map<string, Map<string, KeycloakRole>>();
  const publishers = { realm: new Set<string>(), client: new Map<string, Set<string>>() };
  const unmapped: string[] = [];
  for (const grant of auth.grants) {
    if (!grant.claim || !grant.role) {
      if (grant.claim) unmapped.push(`${grant.claim} (any value): needs a protocol mapper of your own`);
      continue;
    }
    const role = { name: grant.role, description: `ws-notifications: ${grant.allow.join(', ')} on ${grant.topics.join(', ')}` };
    const client = CLIENT_ROLES.exec(grant.claim)?.[1];
    if (grant.claim === REALM_ROLES) {
      realmRoles.set(role.name, role);
      if (grant.allow.includes('publish')) publishers.realm.add(role.name);
    } else if (client) {
      clientRoles.set(client, (clientRoles.get(client) ?? new Map()).set(role.name, role));
      if (grant.allow.includes('publish')) publishers.client.set(client, (publishers.client.get(client) ?? new Set()).add(role.name));
    } else unmapped.push(`${grant.claim} = ${grant.role}: needs a protocol mapper of your own`);
  }
  const audience = auth.audience ?? DEV_AUDIENCE;
  const realm: KeycloakRealm = {
    realm: o.realm ?? realmOfIssuer(auth.issuer) ?? 'ws-notifications',
    enabled: true,
    roles: {
      realm: [...realmRoles.values()],
      client: Object.fromEntries([...clientRoles].map(([client, roles]) => [client, [...roles.values()]])),
    },
    clients: [
      {
        clientId: BACKEND_CLIENT,
        enabled: true,
        publicClient: false,
        serviceAccountsEnabled: true,
        standardFlowEnabled: false,
        directAccessGrantsEnabled: false,
        protocolMappers: [audienceMapper(audience)],
      },
      {
        clientId: o.webClient ?? WEB_CLIENT,
        enabled: true,
        publicClient: true,
        standardFlowEnabled: true,
        directAccessGrantsEnabled: false,
        redirectUris: [...(o.redirectUris ?? ['https://localhost/*'])],
        webOrigins: ['+'],
        attributes: { 'pkce.code.challenge.method': 'S256' },
        protocolMappers: [audienceMapper(audience)],
      },
    ],
    users: [
      {
        username: `service-account-${BACKEND_CLIENT}`,
        enabled: true,
        serviceAccountClientId: BACKEND_CLIENT,
        realmRoles: [...publishers.realm],
        clientRoles: Object.fromEntries([...publishers.client].map(([client, roles]) => [client, [...roles]])),
      },
    ],
  };
  return { realm, unmapped };
}

/** Keycloak's audience mapper: puts `audience` in the access token's `aud`. */
function audienceMapper(audience: string) {
  return {
    name: `audience ${audience}`,
    protocol: 'openid-connect',
    protocolMapper: 'oidc-audience-mapper',
    config: { 'included.custom.audience': audience, 'access.token.claim': 'true', 'id.token.claim': 'false' },
  };
}
