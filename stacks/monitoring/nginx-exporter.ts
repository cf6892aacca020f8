import { Construct } from 'constructs';
import type { ITerraformDependable } from 'cdktf';
import { Container } from '@cdktf/provider-docker/lib/container';
import { nginxExporterSpec } from '../../components/monitoring';
import { proxyHost } from '../../app/src/topology';
import { containerLabels, containerOf } from '../container-attributes';
import { PROXY_PATHS } from '../nginx-proxy';
import { ADDRESSES_BEFORE_0_2, movedFrom, type ComponentProps } from './component';
import { pulledImage } from '../local-image';

export interface NginxExporterProps extends ComponentProps {
  /** Done once the proxy serves stub_status (the exporter starts after it). */
  readonly proxyReady: ITerraformDependable;
}

/** The standard nginx exporter, reading stub_status on the proxy's internal port. */
export class NginxExporter extends Construct {
  readonly container: Container;

  constructor(scope: Construct, id: string, props: NginxExporterProps) {
    super(scope, id);
    const { monitoring, images, proxy } = props.topology;
    const image = movedFrom(pulledImage(this, 'image', images.nginxExporter), ADDRESSES_BEFORE_0_2.exporterImage);
    this.container = movedFrom(
      new Container(this, 'container', {
        name: monitoring.exporterContainerName,
        image: image.imageId,
        // With the pair, the holder of the virtual address: the proxy carrying the clients.
        ...containerOf(nginxExporterSpec({ proxy: `${proxyHost(proxy)}:${PROXY_PATHS.httpPort}`, listen: `:${monitoring.exporterPort}` })),
        networksAdvanced: [{ name: props.networkName, aliases: [monitoring.exporterContainerName] }],
        restart: 'unless-stopped',
        labels: containerLabels(props.labels),
        dependsOn: [props.proxyReady],
      }),
      ADDRESSES_BEFORE_0_2.exporter,
    );
  }
}
