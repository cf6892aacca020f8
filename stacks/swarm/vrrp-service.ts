import { Construct } from 'constructs';
import { Service } from '@cdktf/provider-docker/lib/service';
import { containerLabels } from '../container-attributes';
import { PROXY_PATHS } from '../nginx-proxy';
import { taskContainerOf, type SwarmServiceProps } from './service-attributes';
import { SwarmFile } from './swarm-files';
import type { ComponentFile } from '../../components/spec';
import { vrrpSpec } from '../../components/vrrp';

export interface VrrpServiceProps extends SwarmServiceProps {
  /** The proxy image with keepalived in it (nginx/Dockerfile, WITH_KEEPALIVED=1). */
  readonly image: string;
}

/**
 * The keepalived pair on the swarm target (`proxy.ha`): `proxy.ha.proxies` tasks, at most one
 * per node, each on its node's own network (the host network, with NET_ADMIN and NET_RAW) so it
 * can hold the virtual address on `swarm.vrrpInterface`. Every node runs nginx with its ports
 * published there, so the node holding the address answers clients at it; the check asks that
 * node's nginx for stub_status through the published port, and a node whose nginx stops
 * answering gives the address up (as on the engine target: keepalived/render.ts). Task slot N
 * takes the N-th priority: one config per slot, each a docker_config.
 */
export class VrrpService extends Construct {
  readonly service: Service;

  constructor(scope: Construct, id: string, props: VrrpServiceProps) {
    super(scope, id);
    const { topology } = props;
    const { proxy, swarm } = topology;
    const name = `${proxy.containerName}-vrrp`;
    // The node's nginx, through the port it publishes on the node; its state in the task
    // (`cat /run/ws-ha/state`): Prometheus does not scrape it on this target.
    const launch = (index: number, configName: string) =>
      vrrpSpec(topology, {
        index,
        proxy: name,
        interface: swarm.vrrpInterface,
        configDir: PROXY_PATHS.keepalivedDir,
        stateDir: PROXY_PATHS.haStateDir,
        pidDir: '/run',
        statusPort: proxy.httpPort,
        configName,
      });
    const config = (stem: string, file: ComponentFile) =>
      new SwarmFile(this, stem, { stem: `${name}-${stem}`, content: file.content, labels: props.labels }).asConfig(file.path, file.mode);
    const perSlot = Array.from({ length: proxy.ha.proxies }, (_, index) => launch(index, `keepalived-${index + 1}.conf`));
    // Every task reads its slot's config: the shell expands $VRRP_SLOT, which Swarm templated.
    const spec = launch(0, 'keepalived-$VRRP_SLOT.conf');
    const [, check, notify] = spec.files!;
    this.service = new Service(this, 'service', {
      name,
      labels: containerLabels(props.labels),
      taskSpec: {
        containerSpec: {
          image: props.image,
          ...taskContainerOf(
            { ...spec, env: { VRRP_SLOT: '{{.Task.Slot}}' } },
            { shell: true, prelude: `mkdir -p ${PROXY_PATHS.haStateDir} && ` },
          ),
          configs: [
            ...perSlot.map((slot, index) => config(`conf-${index + 1}`, slot.files![0])),
            config('check', check),
            config('notify', notify),
          ],
        },
        networksAdvanced: [{ name: 'host' }],
        restartPolicy: { condition: 'any', delay: '1s' },
        placement: { maxReplicas: 1, ...(swarm.vrrpPlacement.length ? { constraints: swarm.vrrpPlacement } : {}) },
      },
      mode: { replicated: { replicas: proxy.ha.proxies } },
      dependsOn: props.after,
    });
  }
}
