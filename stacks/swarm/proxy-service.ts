import { Construct } from 'constructs';
import { Service } from '@cdktf/provider-docker/lib/service';
import { tasksOf, type Topology } from '../../app/src/topology';
import { renderNginxConf } from '../../nginx/render';
import { renderFollowScript } from '../../nginx/follow-tasks';
import { containerLabels } from '../container-attributes';
import { PROXY_PATHS, proxyContainerSpec } from '../nginx-proxy';
import { CONTROL_KEY_PATH } from '../server-fleet';
import { dnsrrEndpoint, SERVICE_ROLLOUT, taskContainerOf, type SwarmServiceProps } from './service-attributes';
import { SwarmFile } from './swarm-files';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { builtPage, PAGE_FILES } from '../../web/build';

export interface ProxyServiceProps extends SwarmServiceProps {
  /** The proxy image, by name (nginx/Dockerfile: with curl, for the follower). */
  readonly image: string;
  /** The servers' service: the proxy balances over its tasks. */
  readonly serversService: string;
  /** The server certificate and key, PEM. */
  readonly certificate: string;
  readonly key: string;
  /** The servers' control key, for the follower's announcements. */
  readonly controlKey: SwarmFile;
}

/**
 * The proxy on the swarm target: nginx on every node (a global service), each publishing the
 * topology's ports in host mode, so a client reaches whichever node it is given and stays on
 * that node's proxy, with no ingress mesh in between. Its config, follower script and
 * certificate are docker_config/docker_secret objects, not bind mounts: no node needs the
 * deploying machine's files. The config names no replica: nginx resolves `tasks.ws-server` to
 * every task when it loads it, and the follower (nginx/follow-tasks.ts) reloads it when the
 * tasks change, so scaling never replaces the proxy.
 */
export class ProxyService extends Construct {
  readonly service: Service;
  readonly config: string;

  constructor(scope: Construct, id: string, props: ProxyServiceProps) {
    super(scope, id);
    const { topology } = props;
    const { proxy, tls } = topology;
    const certFile = `${PROXY_PATHS.certsDir}/${tls.serverCert}`;
    // Secrets live in memory under /run/secrets.
    const keyFile = `/run/secrets/${tls.serverKey}`;
    this.config = swarmNginxConf(topology, props.serversService, certFile, keyFile);
    const file = (name: string, content: string, secret = false) =>
      new SwarmFile(this, name, { stem: `${proxy.containerName}-${name}`, content, secret, labels: props.labels });
    const conf = file('conf', this.config);
    const follow = file(
      'follow',
      renderFollowScript(topology, {
        service: props.serversService,
        configFile: PROXY_PATHS.config,
        pidFile: PROXY_PATHS.pid,
        controlKeyFile: CONTROL_KEY_PATH,
      }),
    );
    const cert = file('cert', props.certificate);
    const key = file('key', props.key, true);
    // The page's built files travel as configs like the rest: no node needs the deploying machine's files.
    const page = proxy.page.enabled ? pageConfigs(file) : [];

    this.service = new Service(this, 'service', {
      name: proxy.containerName,
      labels: containerLabels(props.labels),
      taskSpec: {
        containerSpec: {
          image: props.image,
          ...taskContainerOf(proxyContainerSpec(topology)),
          configs: [conf.asConfig(PROXY_PATHS.config), follow.asConfig(PROXY_PATHS.follower, 0o555), cert.asConfig(certFile), ...page],
          secrets: [key.asSecret(keyFile), props.controlKey.asSecret(CONTROL_KEY_PATH)],
        },
        networksAdvanced: [{ name: props.networkName }],
        restartPolicy: { condition: 'any', delay: '1s' },
      },
      mode: { global: true },
      endpointSpec: dnsrrEndpoint(
        { target: PROXY_PATHS.httpsPort, published: proxy.httpsPort },
        { target: PROXY_PATHS.httpPort, published: proxy.httpPort },
      ),
      ...SERVICE_ROLLOUT,
      dependsOn: props.after,
    });
  }
}

/** nginx.conf for a swarm node: the servers' tasks by DNS, the proxy's paths inside its container. */
function swarmNginxConf(topology: Topology, serversService: string, certFile: string, keyFile: string): string {
  return renderNginxConf(topology, {
    upstreams: [`${tasksOf(serversService)}:${topology.server.port}`],
    tasks: serversService,
    certFile,
    keyFile,
    pidFile: PROXY_PATHS.pid,
    httpsPort: PROXY_PATHS.httpsPort,
    httpPort: PROXY_PATHS.httpPort,
    publicHttpsPort: topology.proxy.httpsPort,
    pageDir: PROXY_PATHS.pageDir,
  });
}

/** The notification page's files (web/build.ts), built at synth time, as configs in the page's directory. */
function pageConfigs(file: (name: string, content: string) => SwarmFile) {
  const built = builtPage();
  return PAGE_FILES.map((name) =>
    file(`page-${name.replace('.', '-')}`, readFileSync(join(built, name), 'utf8')).asConfig(`${PROXY_PATHS.pageDir}/${name}`),
  );
}
