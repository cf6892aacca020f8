import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Construct } from 'constructs';
import { TerraformOutput, TerraformStack } from 'cdktf';
import { DockerProvider } from '@cdktf/provider-docker/lib/provider';
import { Network } from '@cdktf/provider-docker/lib/network';
import type { Topology } from '../../app/src/topology';
import { REPORT_FILE } from '../../components/load-client';
import { LOAD_JOB_NAME } from '../load-client-job';
import { projectPaths } from '../paths';
import { serviceSecretFiles } from '../../certs/secrets';
import { BrokerCluster } from './broker-cluster';
import { LoadJobService } from './load-job-service';
import { MonitoringService } from './monitoring-service';
import { ProxyService } from './proxy-service';
import { SERVER_SERVICE, ServerService } from './server-service';
import { SwarmFile } from './swarm-files';
import { VrrpService } from './vrrp-service';

export interface WsNotificationsSwarmStackProps {
  /** The validated topology, with `target: 'swarm'`. */
  readonly topology: Topology;
  /** Absolute path of the repository root. */
  readonly root: string;
  /**
   * Changing it runs the load-client job again.
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
 * The whole system as Docker Swarm services (`target: 'swarm'`), deployed through a manager:
 * an attachable overlay network; the NATS cluster, closed to strangers; the servers (replicas from the topology);
 * nginx on every node, following the servers' tasks; Prometheus discovering them; and the
 * load-client job. Files are docker_config/docker_secret objects, so no node needs this
 * machine's files (the job's report excepted: it is written on the manager that runs it).
 * Images are referenced by name: every node must be able to get them (a registry, or loaded).
 * docs/architecture.md, "Two targets", compares this with the engine target.
 */
export class WsNotificationsSwarmStack extends TerraformStack {
  readonly servers: ServerService;
  readonly proxy: ProxyService;
  readonly broker?: BrokerCluster;
  readonly monitoring?: MonitoringService;
  readonly vrrp?: VrrpService;
  readonly loadJob: LoadJobService;

  constructor(scope: Construct, id: string, props: WsNotificationsSwarmStackProps) {
    super(scope, id);
    const { topology } = props;
    if (topology.target !== 'swarm') throw new Error(`WsNotificationsSwarmStack: topology.target is ${topology.target}, not swarm`);
    const paths = projectPaths(props.root, topology);
    const labels = { 'ws-notifications.stack': topology.name };
    const pem = (file: string) => readPem(paths.certsDir, file);

    new DockerProvider(this, 'docker', {});
    const network = overlayNetwork(this, topology);

    // The broker's users and the replicas' password: secrets from certs/secrets.ts's files.
    const secrets = serviceSecretFiles(paths.secretsDir);
    const secret = (stem: string, file: string) =>
      new SwarmFile(this, stem, { stem, content: readUploaded(file, 'npm run deploy'), secret: true, labels });
    const brokerPassword = topology.broker.enabled ? secret('ws-nats-replica-password', secrets.broker.replica) : undefined;
    if (topology.broker.enabled)
      this.broker = new BrokerCluster(this, 'broker', {
        topology,
        networkName: network.name,
        labels,
        users: secret('ws-nats-users', secrets.broker.config),
      });
    // The replicas' control key: the servers check it, the proxies' followers send it.
    const controlKey = new SwarmFile(this, 'control-key', {
      stem: 'ws-control-key',
      content: pem(topology.tls.controlKey),
      secret: true,
      labels,
    });
    this.servers = new ServerService(this, 'servers', {
      topology,
      image: topology.images.app,
      networkName: network.name,
      labels,
      controlKey,
      brokerPassword,
      after: this.broker ? [this.broker.service] : undefined,
    });
    this.proxy = new ProxyService(this, 'proxy', {
      topology,
      image: topology.images.proxy,
      networkName: network.name,
      serversService: SERVER_SERVICE,
      certificate: pem(topology.tls.serverCert),
      key: pem(topology.tls.serverKey),
      controlKey,
      labels,
      // nginx resolves the servers' tasks when it starts: they must exist.
      after: [this.servers.service],
    });
    // The keepalived pair (proxy.ha): one virtual address on the nodes' network, held by a node whose nginx answers.
    if (topology.proxy.ha.enabled)
      this.vrrp = new VrrpService(this, 'vrrp', {
        topology,
        image: topology.images.proxy,
        networkName: network.name,
        labels,
        after: [this.proxy.service],
      });
    if (topology.monitoring.enabled)
      this.monitoring = new MonitoringService(this, 'monitoring', {
        topology,
        networkName: network.name,
        serversService: SERVER_SERVICE,
        loadService: LOAD_JOB_NAME,
        labels,
      });
    this.loadJob = this.loadJobService(props, paths, network.name, labels);
    this.outputs(topology, paths);
  }

  /** The load-client job, once the proxies (and Prometheus) run. */
  private loadJobService(
    props: WsNotificationsSwarmStackProps,
    paths: ReturnType<typeof projectPaths>,
    networkName: string,
    labels: Record<string, string>,
  ): LoadJobService {
    const { topology } = props;
    return new LoadJobService(this, 'load', {
      topology,
      image: topology.images.app,
      networkName,
      ca: readPem(paths.certsDir, topology.tls.caCert),
      reportsDir: paths.reportsDir,
      runId: props.loadRunId ?? '1',
      user: props.loadUser,
      labels,
      after: [this.proxy.service, ...(this.monitoring ? [this.monitoring.service] : [])],
    });
  }

  /** What `cdktf deploy` prints: the endpoints, the services, the load job's report, Prometheus's port. */
  private outputs(topology: Topology, paths: ReturnType<typeof projectPaths>): void {
    const { proxy, server, swarm, monitoring } = topology;
    const port = proxy.httpsPort === 443 ? '' : `:${proxy.httpsPort}`;
    const hosts =
      proxy.ha.enabled && proxy.ha.virtualAddress
        ? [proxy.ha.virtualAddress]
        : swarm.publicNames.length
          ? swarm.publicNames
          : ['<any node>'];
    new TerraformOutput(this, 'endpoints', { value: hosts.map((n) => `wss://${n}${port}${server.path}`) });
    new TerraformOutput(this, 'servers_service', { value: SERVER_SERVICE });
    new TerraformOutput(this, 'replicas', { value: topology.replicas });
    new TerraformOutput(this, 'load_job_service', { value: LOAD_JOB_NAME });
    new TerraformOutput(this, 'load_report', { value: join(paths.reportsDir, REPORT_FILE) });
    if (monitoring.enabled) new TerraformOutput(this, 'prometheus_port', { value: monitoring.prometheusPort });
  }
}

/** A certificate, key or service secret of the deployment, read at synth: the swarm target uploads them as configs and secrets. */
function readUploaded(path: string, makeWith: string): string {
  if (!existsSync(path)) throw new Error(`${path} is missing: the swarm target uploads it as a config or secret (run ${makeWith})`);
  return readFileSync(path, 'utf8');
}

/** A certificate or key of the deployment. */
const readPem = (certsDir: string, file: string) => readUploaded(join(certsDir, file), 'npm run certs, or npm run deploy');

/** The services' attachable overlay network. */
function overlayNetwork(scope: Construct, topology: Topology): Network {
  return new Network(scope, 'network', {
    name: topology.network.name,
    driver: 'overlay',
    // Attachable: the tests and an operator's debugging container can join it.
    attachable: true,
    labels: [{ label: 'ws-notifications.managed', value: 'true' }],
  });
}
