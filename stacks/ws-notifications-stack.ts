import type { Construct } from 'constructs';
import { TerraformOutput, TerraformStack } from 'cdktf';
import { DockerProvider } from '@cdktf/provider-docker/lib/provider';
import { join, resolve } from 'node:path';
import { proxyHost, usesDevelopmentIdp, type Topology } from '../app/src/topology';
import { serviceSecretFiles } from '../certs/secrets';
import { DevIdentityProvider } from './idp';
import { REPORT_FILE } from '../components/load-client';
import { LOAD_JOB_NAME, LoadClientJob } from './load-client-job';
import { Broker } from './broker';
import { LocalImage } from './local-image';
import { Monitoring } from './monitoring/monitoring';
import { dashboardUrl } from '../monitoring/grafana/dashboard';
import { NginxProxy } from './nginx-proxy';
import { NotificationNetwork } from './network';
import { projectPaths } from './paths';
import { ServerFleet } from './server-fleet';

export interface WsNotificationsStackProps {
  /** The validated topology (see defineTopology). */
  readonly topology: Topology;
  /** Absolute path of the repository root. */
  readonly root: string;
  /**
   * Changing it re-runs the load-client job.
   * @default "1"
   */
  readonly loadRunId?: string;
  /**
   * `uid:gid` for the load-client job (the deploying user, so reports are theirs).
   * @default the image's user
   */
  readonly loadUser?: string;
}

/**
 * The whole system on one Docker engine: network, broker (NATS JetStream, closed to strangers),
 * the development IdP (auth.mode jwt without a provider), server fleet, Nginx proxy, monitoring
 * (Prometheus, the nginx exporter, Grafana; switchable off in the topology) and the load-client job.
 */
export class WsNotificationsStack extends TerraformStack {
  readonly fleet: ServerFleet;
  readonly proxy: NginxProxy;
  readonly loadJob: LoadClientJob;
  readonly monitoring?: Monitoring;
  readonly broker?: Broker;
  /** The development OpenID provider, with auth.mode jwt and no provider named. */
  readonly idp?: DevIdentityProvider;

  constructor(scope: Construct, id: string, props: WsNotificationsStackProps) {
    super(scope, id);
    const { topology } = props;
    const paths = projectPaths(props.root, topology);
    const labels = { 'ws-notifications.stack': topology.name };

    new DockerProvider(this, 'docker', {});

    const network = new NotificationNetwork(this, 'network', topology.network);

    const { appImage, proxyImage } = this.images(topology, paths);

    const secrets = serviceSecretFiles(paths.secretsDir);
    if (topology.broker.enabled)
      this.broker = new Broker(this, 'broker', { topology, networkName: network.name, labels, authFile: secrets.broker.config });
    if (usesDevelopmentIdp(topology.auth))
      this.idp = new DevIdentityProvider(this, 'idp', {
        topology,
        networkName: network.name,
        labels,
        imageId: appImage.imageId,
        secretFile: secrets.idp,
      });

    this.fleet = new ServerFleet(this, 'fleet', {
      topology,
      imageId: appImage.imageId,
      networkName: network.name,
      labels,
      after: [this.broker?.container, this.idp?.container].filter((c) => c !== undefined),
      controlKeyFile: join(paths.certsDir, topology.tls.controlKey),
      ...(this.broker ? { brokerPasswordFile: secrets.broker.replica } : {}),
      ...(topology.server.apiKeyFile ? { apiKeyFile: resolve(paths.root, topology.server.apiKeyFile) } : {}),
    });

    this.proxy = new NginxProxy(this, 'proxy', {
      topology,
      imageId: proxyImage.imageId,
      networkName: network.name,
      replicas: this.fleet.names,
      root: paths.root,
      fleet: this.fleet.containers,
      configDir: join(paths.deployDir, 'nginx'),
      certsDir: paths.certsDir,
      pageDir: paths.pageDir,
      controlKeyFile: join(paths.certsDir, topology.tls.controlKey),
      ...(topology.proxy.ha.enabled ? { haDir: join(paths.deployDir, 'ha') } : {}),
      labels,
    });

    if (topology.monitoring.enabled) {
      this.monitoring = new Monitoring(this, 'monitoring', {
        topology,
        networkName: network.name,
        replicas: this.fleet.names,
        loadClientHost: LOAD_JOB_NAME,
        configDir: join(paths.deployDir, 'monitoring'),
        proxyReady: this.proxy.reload,
        labels,
      });
    }

    this.loadJob = this.loadClientJob(props, paths, appImage.imageId, network.name, labels, secrets.idp);

    this.outputs(topology, paths);
  }

  /** The load-client job; with monitoring, Prometheus scrapes the run from its first second. */
  private loadClientJob(
    props: WsNotificationsStackProps,
    paths: ReturnType<typeof projectPaths>,
    imageId: string,
    networkName: string,
    labels: Record<string, string>,
    idpSecretFile: string,
  ): LoadClientJob {
    const { topology } = props;
    return new LoadClientJob(this, 'load', {
      topology,
      imageId,
      networkName,
      caFile: join(paths.certsDir, topology.tls.caCert),
      reportsDir: paths.reportsDir,
      runId: props.loadRunId ?? '1',
      user: props.loadUser,
      ...(this.idp ? { idpSecretFile } : {}),
      // The profile's key file, made absolute: a mount in the job (load.publishApi).
      ...(topology.load.publishApi ? { apiKeyFile: resolve(paths.root, topology.load.publishApi.keyFile) } : {}),
      after: this.monitoring ? [this.proxy.reload, this.monitoring.reload, this.monitoring.exporter] : [this.proxy.reload],
      labels,
    });
  }

  /** The images built here: the app (server and load client) and the proxy. */
  private images(topology: Topology, paths: ReturnType<typeof projectPaths>) {
    const appImage = new LocalImage(this, 'app-image', {
      name: topology.images.app,
      context: paths.root,
      dockerfile: 'app/Dockerfile',
      buildArgs: { NODE_IMAGE: topology.images.nodeBase },
      sources: [join(paths.root, 'app'), join(paths.root, 'package-lock.json')],
      keep: topology.images.keep,
    });
    const proxyImage = new LocalImage(this, 'proxy-image', {
      name: topology.images.proxy,
      context: join(paths.root, 'nginx'),
      dockerfile: 'Dockerfile',
      // The HA pair's proxies also run keepalived (Debian's, installed in the image).
      buildArgs: { NGINX_IMAGE: topology.images.nginxBase, ...(topology.proxy.ha.enabled ? { WITH_KEEPALIVED: '1' } : {}) },
      sources: [join(paths.root, 'nginx', 'Dockerfile')],
      keep: topology.images.keep,
    });

    return { appImage, proxyImage };
  }

  /** What `cdktf deploy` prints: the endpoint, the replicas, the load job's report and exit code, the monitoring URLs. */
  private outputs(topology: Topology, paths: ReturnType<typeof projectPaths>): void {
    new TerraformOutput(this, 'endpoint', {
      // The pair publishes no host port: its virtual address, on the service network.
      value: topology.proxy.ha.enabled
        ? `wss://${proxyHost(topology.proxy)}${topology.server.path}`
        : `wss://localhost${topology.proxy.httpsPort === 443 ? '' : `:${topology.proxy.httpsPort}`}${topology.server.path}`,
    });
    new TerraformOutput(this, 'replicas', { value: this.fleet.names });
    new TerraformOutput(this, 'load_report', { value: join(paths.reportsDir, REPORT_FILE) });
    new TerraformOutput(this, 'load_exit_code', { value: this.loadJob.container.exitCode });
    if (topology.monitoring.enabled) {
      new TerraformOutput(this, 'prometheus_url', { value: `http://127.0.0.1:${topology.monitoring.prometheusPort}` });
      if (topology.monitoring.grafana) {
        new TerraformOutput(this, 'grafana_url', { value: dashboardUrl(topology.monitoring.grafanaPort) });
      }
    }
  }
}
