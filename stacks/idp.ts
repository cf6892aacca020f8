import { Construct } from 'constructs';
import { Container } from '@cdktf/provider-docker/lib/container';
import { DEV_IDP, DEV_IDP_ISSUER, pageOrigins } from '../app/src/topology';
import { idpSpec } from '../components/idp';
import { containerLabels, containerOf, type EngineContainerProps } from './container-attributes';

/** Where the ws-idp container (and the load job) find the clients' secret. */
export const IDP_SECRET_PATH = '/run/secrets/idp-secret';

/** Its place is DEV_IDP; it reads the topology's proxy for where the page signs people in. */
export interface DevIdentityProviderProps extends EngineContainerProps {
  /** The app image: it holds the provider (dist/idp). */
  readonly imageId: string;
  /** The clients' secret on this machine (certs/secrets.ts), bind-mounted read-only. */
  readonly secretFile: string;
}

/**
 * The development OpenID provider (app/src/idp) as the ws-idp container, when `auth.mode` is
 * `jwt` and no provider is named: replicas fetch its JWKS and the load job its tokens over the
 * service network, at DEV_IDP_ISSUER. No host port: browsers reach it through the proxy, at
 * DEV_IDP.proxyPath on the TLS port, to sign in on the page served at the proxy's origins.
 */
export class DevIdentityProvider extends Construct {
  readonly container: Container;

  constructor(scope: Construct, id: string, props: DevIdentityProviderProps) {
    super(scope, id);
    const { proxy } = props.topology;
    const vip = proxy.ha.enabled && proxy.ha.virtualAddress ? [proxy.ha.virtualAddress] : [];
    const spec = idpSpec({
      issuer: DEV_IDP_ISSUER,
      port: DEV_IDP.port,
      secretFile: IDP_SECRET_PATH,
      pageOrigins: proxy.page.enabled ? pageOrigins(proxy.httpsPort, vip) : [],
    });
    this.container = new Container(this, 'container', {
      name: DEV_IDP.host,
      image: props.imageId,
      ...containerOf(spec),
      volumes: [{ hostPath: props.secretFile, containerPath: IDP_SECRET_PATH, readOnly: true }],
      networksAdvanced: [{ name: props.networkName, aliases: [DEV_IDP.host] }],
      restart: 'unless-stopped',
      wait: true,
      waitTimeout: 60,
      labels: containerLabels(props.labels),
    });
  }
}
