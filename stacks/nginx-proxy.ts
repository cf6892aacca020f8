import { createHash } from 'node:crypto';
import { Construct } from 'constructs';
import { DataResource, type ITerraformDependable } from 'cdktf';
import { Container } from '@cdktf/provider-docker/lib/container';
import { proxyNames, type Topology } from '../app/src/topology';
import { RELOAD_PLAN_ENV, type ReloadPlan } from '../app/src/shared/control';
import { announcementTiming } from '../control/reload';
import { renderFollowScript } from '../nginx/follow-tasks';
import { CONTROL_KEY_PATH } from './server-fleet';
import { ConfigFiles } from './config-files';
import { proxySpec } from '../components/proxy';
import { shellLine } from '../components/shell';
import { filesByName, type ComponentSpec } from '../components/spec';
import { vrrpSpec } from '../components/vrrp';
import { PROXY_PORTS, renderNginxConf } from '../nginx/render';
import { containerLabels, containerOf, type EngineContainerProps } from './container-attributes';

export interface NginxProxyProps extends EngineContainerProps {
  readonly imageId: string;
  /** The replicas' container names, in order; nginx reaches each on the server port. */
  readonly replicas: string[];
  /** The repository root: the reload step runs scripts/proxy-reload.ts from it. */
  readonly root: string;
  /** The replicas; the config is installed only once they exist (nginx resolves upstream names at load). */
  readonly fleet: ITerraformDependable[];
  /** Host directory holding the live config, bind-mounted into the container. */
  readonly configDir: string;
  /** Host directory holding the certificate and key, bind-mounted read-only. */
  readonly certsDir: string;
  /** The notification page's files on the host (stacks/paths.ts: pageDir), mounted when proxy.page is on. */
  readonly pageDir: string;
  /**
   * With the HA pair: host directory for each proxy's keepalived files (`<dir>/<proxy>/`).
   * @default none: required when `proxy.ha.enabled`
   */
  readonly haDir?: string;
  /** The replicas' control key on this machine (tls.controlKey): the follower sends it. */
  readonly controlKeyFile: string;
}

/** Where things are inside the proxy container. */
export const PROXY_PATHS = {
  configDir: '/etc/nginx/ws',
  config: '/etc/nginx/ws/nginx.conf',
  /** The follower beside nginx (nginx/follow-tasks.ts). */
  follower: '/etc/nginx/ws/follow-tasks.sh',
  certsDir: '/etc/nginx/certs',
  /** The notification page's built files (proxy.page). */
  pageDir: '/etc/nginx/page',
  pid: '/run/nginx.pid',
  httpsPort: PROXY_PORTS.https,
  httpPort: PROXY_PORTS.http,
  /** The HA pair: keepalived's config and scripts (read-only), and its state and metric (written). */
  keepalivedDir: '/etc/keepalived/ws',
  haStateDir: '/run/ws-ha',
} as const;

/**
 * How a proxy container runs: the follower (every reload announced to the replicas) beside
 * nginx, which stays the main process, on every target.
 */
export function proxyContainerSpec(topology: Topology): ComponentSpec {
  return proxySpec(topology, { config: PROXY_PATHS.config, pidFile: PROXY_PATHS.pid, follower: PROXY_PATHS.follower });
}

/** Where the HA pair's keepalived keeps its pid files in a proxy container. */
const HA_PID_DIR = '/run';

/**
 * The HA pair adds keepalived beside them. A restarted container keeps its files: keepalived's
 * pid files from before would name a pid now reused (nginx's), and it would refuse to start, so
 * they go first.
 */
function haCommand(nginx: ComponentSpec, vrrp: ComponentSpec): string[] {
  const [, , nginxLine] = nginx.argv; // sh -c <the follower and nginx>
  return ['sh', '-c', `rm -f ${HA_PID_DIR}/keepalived.pid ${HA_PID_DIR}/keepalived-vrrp.pid; ${shellLine(vrrp.argv)} & ${nginxLine}`];
}

/**
 * The Nginx proxy. Its container's attributes do not depend on the replica count: the rendered
 * config lives in a bind-mounted host directory, written at apply time, and a config change
 * reloads nginx gracefully (`nginx -s reload`) instead of replacing the container, which would
 * drop every open WebSocket. Certificates are bind-mounted read-only, so the key never enters
 * Terraform state or cdktf.out.
 */
export class NginxProxy extends Construct {
  /** One proxy container, or the HA pair's (ws-nginx-0, ws-nginx-1, ...). */
  readonly containers: Container[];
  readonly config: string;
  readonly configHash: string;
  /** Done once the current config is live; the load job waits for it. */
  readonly reload: DataResource;

  constructor(scope: Construct, id: string, props: NginxProxyProps) {
    super(scope, id);
    if (props.topology.proxy.ha.enabled && !props.haDir) throw new Error('NginxProxy: proxy.ha needs haDir');
    this.config = renderProxyConf(props.topology, props.replicas);
    const follower = renderFollowScript(props.topology, {
      configFile: PROXY_PATHS.config,
      pidFile: PROXY_PATHS.pid,
      controlKeyFile: CONTROL_KEY_PATH,
    });
    const install = new ConfigFiles(this, 'config', {
      dir: props.configDir,
      files: { 'nginx.conf': this.config, 'follow-tasks.sh': follower },
      dependsOn: props.fleet,
    });
    this.configHash = install.sha256;
    this.containers = proxyNames(props.topology.proxy).map((name, index) => this.proxyContainer(props, install, name, index));
    this.reload = this.reloadStep(props, install);
  }

  /** One proxy's container; with the HA pair, keepalived beside nginx and its files. */
  private proxyContainer(props: NginxProxyProps, install: ConfigFiles, name: string, index: number): Container {
    const { proxy } = props.topology;
    const pair = proxy.ha.enabled ? this.pairMember(props, name, index) : undefined;
    const nginx = proxyContainerSpec(props.topology);
    return new Container(this, pair ? `container-${index}` : 'container', {
      name,
      image: props.imageId,
      ...containerOf(nginx),
      ...(pair ? { command: haCommand(nginx, pair.spec), capabilities: { add: [...(pair.spec.capabilities ?? [])] } } : {}),
      // The pair is reached at its virtual address on the service network; two proxies cannot
      // publish the same host ports.
      ports: pair
        ? []
        : [
            { internal: PROXY_PATHS.httpsPort, external: proxy.httpsPort },
            { internal: PROXY_PATHS.httpPort, external: proxy.httpPort },
          ],
      volumes: [
        { hostPath: props.configDir, containerPath: PROXY_PATHS.configDir, readOnly: true },
        { hostPath: props.certsDir, containerPath: PROXY_PATHS.certsDir, readOnly: true },
        ...(proxy.page.enabled ? [{ hostPath: props.pageDir, containerPath: PROXY_PATHS.pageDir, readOnly: true }] : []),
        { hostPath: props.controlKeyFile, containerPath: CONTROL_KEY_PATH, readOnly: true },
        ...(pair?.volumes ?? []),
      ],
      networksAdvanced: [{ name: props.networkName, aliases: [name] }],
      restart: 'unless-stopped',
      wait: true,
      waitTimeout: 60,
      labels: containerLabels(props.labels),
      dependsOn: [install.resource, ...(pair ? [pair.files.resource] : [])],
    });
  }

  /** A member of the HA pair: keepalived's spec and files (its priority differs), and a directory it writes its state to. */
  private pairMember(props: NginxProxyProps, name: string, index: number) {
    const spec = vrrpSpec(props.topology, {
      index,
      proxy: name,
      interface: 'eth0',
      configDir: PROXY_PATHS.keepalivedDir,
      stateDir: PROXY_PATHS.haStateDir,
      pidDir: HA_PID_DIR,
      statusPort: PROXY_PATHS.httpPort,
    });
    const files = new ConfigFiles(this, `keepalived-${index}`, {
      dir: `${props.haDir}/${name}/config`,
      files: filesByName(spec),
    });
    const volumes = [
      { hostPath: `${props.haDir}/${name}/config`, containerPath: PROXY_PATHS.keepalivedDir, readOnly: true },
      { hostPath: `${props.haDir}/${name}/state`, containerPath: PROXY_PATHS.haStateDir },
    ];
    return { spec, files, volumes };
  }

  /**
   * Runs on every config change, after the containers exist: check, reload gracefully, then
   * tell the replicas which nginx workers are current, so the retired workers' WebSockets get
   * 1001 before worker_shutdown_timeout instead of 1006 at it (and rebalance, when enabled).
   */
  private reloadStep(props: NginxProxyProps, install: ConfigFiles): DataResource {
    const { proxy } = props.topology;
    const plan: ReloadPlan = {
      proxies: proxyNames(proxy),
      configFile: PROXY_PATHS.config,
      pidFile: PROXY_PATHS.pid,
      workerProcesses: proxy.workerProcesses,
      replicas: props.replicas,
      port: props.topology.server.port,
      announce: announcementTiming(proxy),
      ...(proxy.rebalance.enabled ? { rebalance: proxy.rebalance } : {}),
    };
    const planJson = JSON.stringify(plan);
    return new DataResource(this, 'reload', {
      triggersReplace: { sha256: this.configHash, plan: createHash('sha256').update(planJson).digest('hex') },
      dependsOn: [...this.containers, install.resource],
      provisioners: [
        {
          type: 'local-exec',
          command: 'cd "$WS_ROOT" && node --import tsx scripts/proxy-reload.ts',
          environment: { WS_ROOT: props.root, [RELOAD_PLAN_ENV]: planJson },
        },
      ],
    });
  }
}

/** nginx.conf as the proxy container sees it: its own ports and paths. */
function renderProxyConf(topology: Topology, replicas: readonly string[]): string {
  const { proxy, tls } = topology;
  return renderNginxConf(topology, {
    upstreams: replicas.map((name) => `${name}:${topology.server.port}`),
    certFile: `${PROXY_PATHS.certsDir}/${tls.serverCert}`,
    keyFile: `${PROXY_PATHS.certsDir}/${tls.serverKey}`,
    pidFile: PROXY_PATHS.pid,
    // Inside the container nginx binds the container ports; the topology's ports are the
    // published ones (and the one the port-80 redirect points at).
    httpsPort: PROXY_PATHS.httpsPort,
    httpPort: PROXY_PATHS.httpPort,
    publicHttpsPort: proxy.httpsPort,
    pageDir: PROXY_PATHS.pageDir,
    ...(proxy.ha.enabled
      ? { sessionTicketKeyFile: `${PROXY_PATHS.certsDir}/${tls.sessionTicketKey}`, vrrpMetricFile: `${PROXY_PATHS.haStateDir}/vrrp.prom` }
      : {}),
  });
}
