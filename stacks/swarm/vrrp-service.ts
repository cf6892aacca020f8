import { Construct } from 'constructs';
import { Service } from '@cdktf/provider-docker/lib/service';
import { renderCheckScript, renderKeepalivedConf, renderNotifyScript } from '../../keepalived/render';
import { containerLabels } from '../container-attributes';
import { PROXY_PATHS } from '../nginx-proxy';
import type { SwarmServiceProps } from './service-attributes';
import { SwarmFile } from './swarm-files';
import { keepalivedArgv } from '../../components/vrrp';
import { shellLine } from '../../components/shell';

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
    const dir = PROXY_PATHS.keepalivedDir;
    const name = `${proxy.containerName}-vrrp`;
    const config = (stem: string, content: string, path: string, mode?: number) =>
      new SwarmFile(this, stem, { stem: `${name}-${stem}`, content, labels: props.labels }).asConfig(path, mode);
    const perSlot = Array.from({ length: proxy.ha.proxies }, (_, index) =>
      config(
        `conf-${index + 1}`,
        renderKeepalivedConf(topology, {
          index,
          interface: swarm.vrrpInterface,
          checkScript: `/bin/bash ${dir}/check.sh`,
          notifyScript: `/bin/sh ${dir}/notify.sh`,
        }),
        `${dir}/keepalived-${index + 1}.conf`,
      ),
    );
    this.service = new Service(this, 'service', {
      name,
      labels: containerLabels(props.labels),
      taskSpec: {
        containerSpec: {
          image: props.image,
          env: { VRRP_SLOT: '{{.Task.Slot}}' },
          command: [
            'sh',
            '-c',
            `mkdir -p ${PROXY_PATHS.haStateDir} && exec ` +
              `${shellLine(keepalivedArgv({ config: `${dir}/keepalived-$VRRP_SLOT.conf`, pidFile: '/run/keepalived.pid', vrrpPidFile: '/run/keepalived-vrrp.pid' }))}`,
          ],
          configs: [
            ...perSlot,
            // The node's nginx, through the port it publishes on the node.
            config('check', renderCheckScript(proxy.httpPort), `${dir}/check.sh`, 0o555),
            // Its state in the task (`cat /run/ws-ha/state`); Prometheus does not scrape it on this target.
            config(
              'notify',
              renderNotifyScript({
                proxy: name,
                stateFile: `${PROXY_PATHS.haStateDir}/state`,
                metricFile: `${PROXY_PATHS.haStateDir}/vrrp.prom`,
              }),
              `${dir}/notify.sh`,
              0o555,
            ),
          ],
          capAdd: ['NET_ADMIN', 'NET_RAW'],
          stopSignal: 'SIGTERM',
          stopGracePeriod: '5s',
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
