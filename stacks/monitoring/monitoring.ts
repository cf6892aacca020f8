import { Construct } from 'constructs';
import type { DataResource, ITerraformDependable } from 'cdktf';
import type { Container } from '@cdktf/provider-docker/lib/container';
import type { Topology } from '../../app/src/topology';
import { Grafana } from './grafana';
import { NginxExporter } from './nginx-exporter';
import { PrometheusServer } from './prometheus-server';

export interface MonitoringProps {
  readonly topology: Topology;
  readonly networkName: string;
  /** Replica container names, in order. */
  readonly replicas: string[];
  /** Host name of the load-client job container (scraped while it runs). */
  readonly loadClientHost: string;
  /** Host directory for the rendered Prometheus and Grafana files (bind-mounted read-only). */
  readonly configDir: string;
  /** Done once the proxy serves stub_status (the exporter starts after it). */
  readonly proxyReady: ITerraformDependable;
  readonly labels: Record<string, string>;
}

/**
 * Prometheus, the nginx exporter and (optionally) Grafana. Like the proxy, Prometheus's
 * container does not depend on the replica count: the scrape config is a bind-mounted file,
 * rewritten on change and picked up with SIGHUP after `promtool check config` passes, so
 * scaling keeps the collected history. The images are pulled, not built: the configs are
 * mounted, and the offline base images stand in for Prometheus and the exporter.
 */
export class Monitoring extends Construct {
  readonly prometheus: Container;
  readonly exporter: Container;
  readonly grafana?: Container;
  /** Done once the current scrape config and rules are live. */
  readonly reload: DataResource;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const { topology, networkName, labels } = props;
    const prometheus = new PrometheusServer(this, 'prometheus', {
      topology,
      networkName,
      labels,
      replicas: props.replicas,
      loadClientHost: props.loadClientHost,
      configDir: `${props.configDir}/prometheus`,
    });
    this.prometheus = prometheus.container;
    this.reload = prometheus.reload;
    this.exporter = new NginxExporter(this, 'exporter', { topology, networkName, labels, proxyReady: props.proxyReady }).container;
    if (topology.monitoring.grafana) {
      this.grafana = new Grafana(this, 'grafana', {
        topology,
        networkName,
        labels,
        configDir: `${props.configDir}/grafana`,
        prometheus: this.prometheus,
      }).container;
    }
  }
}
