import { Construct } from 'constructs';
import { DataResource, type ITerraformDependable } from 'cdktf';
import { Container } from '@cdktf/provider-docker/lib/container';
import { jobLimitSeconds, loadJobSpec, REPORT_FILE } from '../components/load-client';
import { containerEnv, containerLabels, type EngineContainerProps } from './container-attributes';
import { PROXY_PATHS } from './nginx-proxy';
import { IDP_SECRET_PATH } from './idp';
import { API_KEY_PATH } from './server-fleet';
import { DEV_IDP_ISSUER } from '../app/src/topology';

export interface LoadClientJobProps extends EngineContainerProps {
  readonly imageId: string;
  /** Host path of the CA certificate the client verifies the proxy against. */
  readonly caFile: string;
  /** Host directory the report is written to. */
  readonly reportsDir: string;
  /** Changing it re-runs the job on the next deploy. */
  readonly runId: string;
  /**
   * `uid:gid` the job runs as, so the report on the host belongs to the user who deployed.
   * @default the image's user
   */
  readonly user?: string;
  /**
   * The development IdP's client secret on this machine: each virtual user takes a token from ws-idp.
   * @default no tokens (auth off, or the profile's own)
   */
  readonly idpSecretFile?: string;
  /**
   * The publish API's key on this machine, for a profile that publishes through the API (load.publishApi).
   * @default none
   */
  readonly apiKeyFile?: string;
  /** The job starts once these are done (the proxy's config is live). */
  readonly after: ITerraformDependable[];
}

export const LOAD_JOB_NAME = 'ws-load-client';

/**
 * The load-client job: a one-shot container run through the proxy over WSS. `attach` makes the
 * apply wait for it and `logs` keeps its output; a non-zero exit does not fail an apply by itself,
 * so a postcondition on exit_code turns the client's verdict into the deploy's.
 */
export class LoadClientJob extends Construct {
  readonly container: Container;
  readonly run: DataResource;

  constructor(scope: Construct, id: string, props: LoadClientJobProps) {
    super(scope, id);
    const limitSeconds = jobLimitSeconds(props.topology.load);

    this.run = new DataResource(this, 'run', {
      input: { run_id: props.runId },
      triggersReplace: { run_id: props.runId },
    });

    const tokens = props.idpSecretFile ? { issuer: DEV_IDP_ISSUER, secretFile: IDP_SECRET_PATH } : undefined;
    const apiKey = props.apiKeyFile ? { publishApiKeyFile: API_KEY_PATH } : {};
    const spec = loadJobSpec(props.topology, {
      httpsPort: PROXY_PATHS.httpsPort,
      caFile: '/certs/ca.crt',
      reportsDir: '/reports',
      tokens,
      ...apiKey,
    });
    this.container = new Container(this, 'container', {
      name: LOAD_JOB_NAME,
      image: props.imageId,
      // `timeout` bounds the whole job even if the client hangs: an apply always ends.
      command: [...spec.argv],
      env: containerEnv(spec.env ?? {}),
      user: props.user,
      volumes: [
        { hostPath: props.caFile, containerPath: '/certs/ca.crt', readOnly: true },
        { hostPath: props.reportsDir, containerPath: '/reports' },
        ...(props.idpSecretFile ? [{ hostPath: props.idpSecretFile, containerPath: IDP_SECRET_PATH, readOnly: true }] : []),
        ...(props.apiKeyFile ? [{ hostPath: props.apiKeyFile, containerPath: API_KEY_PATH, readOnly: true }] : []),
      ],
      networksAdvanced: [{ name: props.networkName }],
      attach: true,
      logs: true,
      mustRun: false,
      // No `rm`: the provider must read the exit code and logs after the container ends.
      rm: false,
      labels: containerLabels(props.labels),
      dependsOn: props.after,
      lifecycle: {
        // A bare reference: Terraform refuses the "${...}" form cdktf renders for a resource object here.
        replaceTriggeredBy: [`${DataResource.tfResourceType}.${this.run.friendlyUniqueId}`],
        postcondition: [
          {
            // biome-ignore lint/suspicious/noTemplateCurlyInString: a Terraform expression, not a JS template
            condition: '${self.exit_code == 0}',
            errorMessage:
              `The load-client job exited non-zero: a threshold was breached, the run failed, or it passed its ` +
              `${limitSeconds}s limit. Its output is in the container_logs attribute and ${REPORT_FILE} under reports/.`,
          },
        ],
      },
    });
  }
}
