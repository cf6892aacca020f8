import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { permissionsFor } from '../../app/src/server/auth/grants';
import { defineTopology } from '../../app/src/topology';
import { realmOfIssuer, renderKeycloakRealm, WEB_CLIENT } from '../../keycloak/realm';

describe('the Keycloak realm import (npm run keycloak-realm)', () => {
  const { auth } = defineTopology({
    auth: {
      mode: 'jwt',
      issuer: 'https://sso.example.com/realms/acme',
      audience: 'notify-api',
      grants: [
        { claim: 'realm_access.roles', role: 'news-reader', topics: ['news.*'], allow: ['subscribe'] },
        { claim: 'realm_access.roles', role: 'news-editor', topics: ['news.*'], allow: ['subscribe', 'publish'] },
        { claim: 'resource_access.billing.roles', role: 'billing-feed', topics: ['billing.>'], allow: ['publish'] },
        { claim: 'groups', role: 'ops', topics: ['ops.>'], allow: ['subscribe'] },
        { topics: ['user.{sub}.>'], allow: ['subscribe'] },
      ],
    },
  });
  const { realm, unmapped } = renderKeycloakRealm(auth);

  it('names the realm from the issuer and defines every role the grants read, where Keycloak puts it', () => {
    assert.equal(realm.realm, 'acme');
    assert.deepEqual(
      realm.roles.realm.map((r) => r.name),
      ['news-reader', 'news-editor'],
    );
    assert.deepEqual(
      realm.roles.client.billing.map((r) => r.name),
      ['billing-feed'],
    );
    assert.deepEqual(unmapped, ['groups = ops: needs a protocol mapper of your own']);
  });

  it('gives the backend service account the roles that may publish, and both clients the audience', () => {
    const [account] = realm.users as { serviceAccountClientId: string; realmRoles: string[]; clientRoles: Record<string, string[]> }[];
    assert.equal(account.serviceAccountClientId, 'ws-backend');
    assert.deepEqual(account.realmRoles, ['news-editor']);
    assert.deepEqual(account.clientRoles, { billing: ['billing-feed'] });
    for (const client of realm.clients as { clientId: string; protocolMappers: { config: Record<string, string> }[] }[])
      assert.equal(client.protocolMappers[0].config['included.custom.audience'], 'notify-api', client.clientId);
    const web = (realm.clients as { clientId: string; publicClient: boolean }[]).find((c) => c.clientId === WEB_CLIENT);
    assert.equal(web?.publicClient, true);
    assert.doesNotMatch(JSON.stringify(realm), /secret/i, 'no secret is written');
  });

  it("a token Keycloak issues to the service account (its claim layout) gets publish from the topology's grants", () => {
    const [account] = realm.users as { realmRoles: string[]; clientRoles: Record<string, string[]> }[];
    const claims = {
      sub: 'service-account-ws-backend',
      azp: 'ws-backend',
      realm_access: { roles: account.realmRoles },
      resource_access: Object.fromEntries(Object.entries(account.clientRoles).map(([c, roles]) => [c, { roles }])),
    };
    const permissions = permissionsFor(claims, auth);
    assert.ok(permissions.allows('publish', 'news.world'));
    assert.ok(permissions.allows('publish', 'billing.eu.invoice'));
    assert.ok(!permissions.allows('publish', 'ops.alerts'));
  });

  it('reads the realm from a Keycloak issuer only', () => {
    assert.equal(realmOfIssuer('https://kc.example.com/realms/my%20realm/'), 'my realm');
    assert.equal(realmOfIssuer('https://idp.example.com/'), undefined);
    assert.equal(realmOfIssuer(undefined), undefined);
  });
});
