import { Construct } from 'constructs';
import { Service } from '@cdktf/provider-docker/lib/service';
import { containerLabels } from '../container-attributes';
import { loadJobSpec } from '../../components/load-client';
import { LOAD_JOB_NAME } from '../load-client-job';
import { PROXY_PATHS } from '../nginx-proxy';
import { dnsrrEndpoint, ON_A_MANAGER, type SwarmServiceProps } from './service-attributes';
import { SwarmFile } from './swarm-files';

export interface LoadJobServiceProps extends SwarmServiceProps {
  readonly image: string;
  /** The CA certificate, PEM: the job verifies the proxy against it. */
  readonly ca: string;
  /** A directory on the managers where the report is written. */
  readonly reportsDir: string;
  /** Changing it runs the job again. */
  readonly runId: string;
  /**
   * `uid:gid` the job runs as, so its reports belong to whoever deployed.
   * @default the image's user
   */
  readonly user?: string;
}

/**
 * The load-client job on the swarm target: one task that runs once (restart policy none) on a
 * manager, through the proxies by their service name (which resolves to every node's proxy),
 * writing its report into `reportsDir` there. Swarm has no exit code for an apply to wait on:
 * `npm run deploy` and the tests wait for the task to end (control/swarm-job.ts) and read it.
 */
export class LoadJobService extends Construct {
  readonly service: Service;

  constructor(scope: Construct, id: string, props: LoadJobServiceProps) {
    super(scope, id);
    const { topology } = props;
    const ca = new SwarmFile(this, 'ca', { stem: `${LOAD_JOB_NAME}-ca`, content: props.ca, labels: props.labels });
    const spec = loadJobSpec(topology, {
      proxyHost: topology.proxy.containerName,
      httpsPort: PROXY_PATHS.httpsPort,
      caFile: '/certs/ca.crt',
      reportsDir: '/reports',
    });
    this.service = new Service(this, 'service', {
      name: LOAD_JOB_NAME,
      labels: containerLabels(props.labels),
      taskSpec: {
        containerSpec: {
          image: props.image,
          command: [...spec.argv],
          // A new run id is a new task spec: the job runs again.
          env: { ...spec.env, LOAD_RUN_ID: props.runId },
          user: props.user,
          configs: [ca.asConfig('/certs/ca.crt')],
          mounts: [{ type: 'bind', source: props.reportsDir, target: '/reports' }],
        },
        networksAdvanced: [{ name: props.networkName }],
        restartPolicy: { condition: 'none' },
        placement: ON_A_MANAGER,
      },
      mode: { replicated: { replicas: 1 } },
      endpointSpec: dnsrrEndpoint(),
      dependsOn: props.after,
    });
  }
}
