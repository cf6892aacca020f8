import type { Topology } from '../app/src/topology';
import { nginxExporterArgs, prometheusArgs, renderPrometheusFiles } from '../monitoring/prometheus';
import type { PrometheusRenderOptions } from '../monitoring/prometheus-config';
import type { ComponentSpec } from './spec';

export interface PrometheusLaunch {
  /** Where prometheus.yml and the rules are. */
  readonly configDir: string;
  /** Its time-series store. */
  readonly dataDir: string;
  /**
   * The only address it listens on.
   * @default every address
   */
  readonly address?: string;
  readonly port: number;
  /** What it scrapes, as this target reaches it. */
  readonly targets: PrometheusRenderOptions;
}

/** Prometheus with the topology's scrape config and alert rules, ready once /-/ready answers. */
export function prometheusSpec(topology: Topology, o: PrometheusLaunch): ComponentSpec {
  const files = renderPrometheusFiles(topology, o.targets);
  return {
    argv: [
      'prometheus',
      ...prometheusArgs({
        configDir: o.configDir,
        dataDir: o.dataDir,
        retention: topology.monitoring.retention,
        listen: `${o.address ?? ''}:${o.port}`,
      }),
    ],
    imageEntrypoint: true,
    files: Object.entries(files).map(([name, content]) => ({ path: `${o.configDir}/${name}`, content })),
    ports: { http: o.port },
    health: { url: `http://127.0.0.1:${o.port}/-/ready`, probe: 'wget', startPeriodMs: 5_000, retries: 5 },
  };
}

export interface NginxExporterLaunch {
  /** Where nginx's plain-HTTP port answers stub_status (`host:port`). */
  readonly proxy: string;
  /** `host:port` or `:port`. */
  readonly listen: string;
  /**
   * The exporter's program: Debian names it prometheus-nginx-exporter.
   * @default nginx-prometheus-exporter (the upstream name, the image's entrypoint)
   */
  readonly program?: string;
}

/** The standard nginx exporter, reading stub_status. */
export function nginxExporterSpec(o: NginxExporterLaunch): ComponentSpec {
  return {
    argv: [o.program ?? 'nginx-prometheus-exporter', ...nginxExporterArgs({ proxy: o.proxy, listen: o.listen })],
    imageEntrypoint: true,
  };
}
