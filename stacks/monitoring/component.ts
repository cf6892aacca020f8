import type { TerraformResource } from 'cdktf';
import type { Topology } from '../../app/src/topology';

/** What every monitoring component takes: the topology, the network, the stack's labels. */
export interface ComponentProps {
  readonly topology: Topology;
  readonly networkName: string;
  readonly labels: Record<string, string>;
}

/** Where things are inside the monitoring containers. */
export const MONITORING_PATHS = {
  prometheusConfigDir: '/etc/prometheus/ws',
  prometheusData: '/prometheus',
  prometheusPort: 9090,
} as const;

/**
 * Until 0.1.0 these resources lived directly in the Monitoring construct. Their addresses then
 * (ids hash the construct path below the stack, so they are the same for every stack) are moved
 * to the new ones, so an upgrade keeps the running containers, Prometheus's history with them,
 * instead of replacing them. `terraform` (>= 1.1) and the offline applier read the moved blocks.
 */
export const ADDRESSES_BEFORE_0_2 = {
  prometheusImage: 'docker_image.monitoring_prometheus-image_839648D2',
  prometheus: 'docker_container.monitoring_prometheus_E6B71C96',
  prometheusConfig: 'terraform_data.monitoring_prometheus-config_files_3253687C',
  prometheusReload: 'terraform_data.monitoring_prometheus-reload_8009901B',
  exporterImage: 'docker_image.monitoring_nginx-exporter-image_5FED0B00',
  exporter: 'docker_container.monitoring_nginx-exporter_62ACDC35',
  grafanaImage: 'docker_image.monitoring_grafana-image_8A564227',
  grafana: 'docker_container.monitoring_grafana_37F5F7A4',
  grafanaConfig: 'terraform_data.monitoring_grafana-config_files_3BF8BB9F',
} as const;

/** Marks a resource as the one formerly at `from`. */
export function movedFrom<R extends TerraformResource>(resource: R, from: string): R {
  resource.moveFromId(from);
  return resource;
}
