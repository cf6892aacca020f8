import type { Topology } from '../app/src/topology';
import { NGINX_STATUS_PATH } from '../nginx/render';
import { renderAlertRules } from './alert-rules';
import { renderPrometheusConfig, RULES_FILE, type PrometheusRenderOptions } from './prometheus-config';

/**
 * How Prometheus and the nginx exporter are run, the same in containers and as local
 * processes: the files Prometheus reads and the flags both get. The flags suit the public
 * images and Debian's packages alike (the exporter 0.11 parses `--flag=value` too).
 */
export const PROMETHEUS_CONFIG_FILE = 'prometheus.yml';

/** prometheus.yml and the rules it loads, by file name, for one directory. */
export function renderPrometheusFiles(topology: Topology, targets: PrometheusRenderOptions): Record<string, string> {
  return {
    [PROMETHEUS_CONFIG_FILE]: renderPrometheusConfig(topology, targets),
    [RULES_FILE]: renderAlertRules(topology),
  };
}

export function prometheusArgs(o: { configDir: string; dataDir: string; retention: string; listen: string }): string[] {
  return [
    `--config.file=${o.configDir}/${PROMETHEUS_CONFIG_FILE}`,
    `--storage.tsdb.path=${o.dataDir}`,
    `--storage.tsdb.retention.time=${o.retention}`,
    `--web.listen-address=${o.listen}`,
  ];
}

/** `proxy` is where nginx's plain-HTTP port answers (`host:port`). */
export function nginxExporterArgs(o: { proxy: string; listen: string }): string[] {
  return [`--nginx.scrape-uri=http://${o.proxy}${NGINX_STATUS_PATH}`, `--web.listen-address=${o.listen}`];
}
