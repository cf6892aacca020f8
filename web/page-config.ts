import { CENTRIFUGE_PATH } from '../app/src/shared/centrifuge';
import { DEV_IDP, usesDevelopmentIdp, type Topology } from '../app/src/topology';
import type { PageConfig } from './page/config';

/** What the page reads from /config.json: the path, the topics and the sign-in, from the topology. */
export function pageConfig(topology: Topology): PageConfig {
  const { auth, proxy } = topology;
  return {
    centrifugePath: CENTRIFUGE_PATH,
    topics: proxy.page.topics,
    auth:
      auth.mode === 'jwt' && auth.issuer
        ? {
            mode: 'jwt',
            issuer: auth.issuer,
            ...(usesDevelopmentIdp(auth) ? { via: DEV_IDP.proxyPath } : {}),
            clientId: proxy.page.clientId,
            scope: 'openid notify',
          }
        : { mode: 'none' },
  };
}
