import { createHash } from 'node:crypto';
import { Construct } from 'constructs';
import { DataResource, type ITerraformDependable } from 'cdktf';
import { Container } from '@cdktf/provider-docker/lib/container';
import { stopGraceMs, type Topology } from '../app/src/topology';
import { RELOAD_PLAN_ENV, type ReloadPlan } from '../app/src/shared/control';
import { reloadPlan } from '../control/reload';
import { ConfigFiles } from './config-files';
import { renderNginxConf } from '../nginx/render';
import { containerLabels, healthcheck, stopAttributes } from './container-attributes';

export interface NginxProxyProps {
  readonly topology: Topology;
  readonly imageId: string;
  readonly networkName: string;
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
  readonly labels: Record<string, string>;
}

/** Where things are inside the proxy container. */
export const PROXY_PATHS = {
  configDir: '/etc/nginx/ws',
  config: '/etc/nginx/ws/nginx.conf',
  certsDir: '/etc/nginx/certs',
  pid: '/run/nginx.pid',
  httpsPort: 443,
  httpPort: 80,
} as const;

/**
 * The Nginx proxy. Its container's attributes do not depend on the replica count: the rendered
 * config lives in a bind-mounted host directory, written at apply time, and a config change
 * reloads nginx gracefully (`nginx -s reload`) instead of replacing the container, which would
 * drop every open WebSocket. Certificates are bind-mounted read-only, so the key never enters
 * Terraform state or cdktf.out.
 */
export class NginxProxy extends Construct {
  readonly container: Container;
  readonly config: string;
  readonly configHash: string;
  /** Done once the current config is live; the load job waits for it. */
  readonly reload: DataResource;

  constructor(scope: Construct, id: string, props: NginxProxyProps) {
    super(scope, id);
    const { proxy, tls } = props.topology;
    this.config = renderNginxConf(props.topology, {
      upstreams: props.replicas.map((name) => `${name}:${props.topology.server.port}`),
      certFile: `${PROXY_PATHS.certsDir}/${tls.serverCert}`,
      keyFile: `${PROXY_PATHS.certsDir}/${tls.serverKey}`,
      pidFile: PROXY_PATHS.pid,
      // Inside the container nginx binds the container ports; the topology's ports are the
      // published ones (and the one the port-80 redirect points at).
      httpsPort: PROXY_PATHS.httpsPort,
      httpPort: PROXY_PATHS.httpPort,
      publicHttpsPort: proxy.httpsPort,
    });
    const install = new ConfigFiles(this, 'config', { dir: props.configDir, files: { 'nginx.conf': this.config }, dependsOn: props.fleet });
    this.configHash = install.sha256;

    this.container = new Container(this, 'container', {
      name: proxy.containerName,
      image: props.imageId,
      command: ['nginx', '-c', PROXY_PATHS.config, '-g', 'daemon off;'],
      ports: [
        { internal: PROXY_PATHS.httpsPort, external: proxy.httpsPort },
        { internal: PROXY_PATHS.httpPort, external: proxy.httpPort },
      ],
      volumes: [
        { hostPath: props.configDir, containerPath: PROXY_PATHS.configDir, readOnly: true },
        { hostPath: props.certsDir, containerPath: PROXY_PATHS.certsDir, readOnly: true },
      ],
      networksAdvanced: [{ name: props.networkName, aliases: [proxy.containerName] }],
      // The container's own network namespace: the kernel caps nginx's listen backlog at this.
      sysctls: { 'net.core.somaxconn': String(proxy.listenBacklog) },
      ulimit: [{ name: 'nofile', soft: proxy.maxOpenFiles, hard: proxy.maxOpenFiles }],
      restart: 'unless-stopped',
      // SIGQUIT is nginx's graceful shutdown: in-flight handshakes finish. WebSockets do not end
      // by themselves, so waiting longer than the fleet's stop grace would only delay a destroy.
      ...stopAttributes('SIGQUIT', stopGraceMs(props.topology.server)),
      healthcheck: healthcheck(['CMD-SHELL', `test -s ${PROXY_PATHS.pid} && kill -0 "$(cat ${PROXY_PATHS.pid})"`], { startPeriod: '2s', retries: 3 }),
      wait: true,
      waitTimeout: 60,
      labels: containerLabels(props.labels),
      dependsOn: [install.resource],
    });

    // Runs on every config change, after the container exists: check, reload gracefully, then
    // tell the replicas which nginx workers are current, so the retired workers' WebSockets get
    // 1001 before worker_shutdown_timeout instead of 1006 at it (and rebalance, when enabled).
    const plan: ReloadPlan = {
      proxy: proxy.containerName,
      configFile: PROXY_PATHS.config,
      pidFile: PROXY_PATHS.pid,
      workerProcesses: proxy.workerProcesses,
      replicas: props.replicas,
      port: props.topology.server.port,
      announce: reloadPlan(proxy),
      ...(proxy.rebalance.enabled ? { rebalance: proxy.rebalance } : {}),
    };
    const planJson = JSON.stringify(plan);
    this.reload = new DataResource(this, 'reload', {
      triggersReplace: { sha256: this.configHash, plan: createHash('sha256').update(planJson).digest('hex') },
      dependsOn: [this.container, install.resource],
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
