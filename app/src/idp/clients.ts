/** The development IdP's clients and grant: what its callers need, without loading the provider. */

/** The client backends use (client credentials): tokens with `sub` = this id. */
export const BACKEND_CLIENT = 'ws-backend';
/** The notification page's public client (authorization code with PKCE, no secret): proxy.page.clientId's default. */
export const PAGE_CLIENT = 'ws-page';
/** The client that may mint a token for any user (`npm run token`, the load client's virtual users). */
export const DEV_CLIENT = 'ws-dev';
/**
 * The grant for a person's token without a login page, as Keycloak's direct access grant gives
 * one: `sub`, optional `roles` and `grants` (space-separated), `ttl` in seconds.
 */
export const DEV_USER_GRANT = 'urn:ws-notifications:grant-type:dev-user';

/** Where the development IdP's key rotation is asked for (POST, with the clients' secret as a bearer key). */
export const ROTATE_KEYS_PATH = '/dev/rotate-keys';
