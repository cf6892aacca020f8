import type { Topology } from '../app/src/topology';
import type { CommandHealth, ComponentSpec, HttpHealth } from '../components/spec';

/** What every engine construct that runs containers takes (as the swarm's share SwarmServiceProps). */
export interface EngineContainerProps {
  /** The validated topology; each construct says which parts it reads. */
  readonly topology: Topology;
  /** The stack's bridge network. */
  readonly networkName: string;
  readonly labels: Record<string, string>;
}

/** Container attributes in the provider's shapes, from plain records (sorted: stable plans). */
export function containerEnv(env: Record<string, string>): string[] {
  return Object.keys(env)
    .sort()
    .map((k) => `${k}=${env[k]}`);
}

export function containerLabels(labels: Record<string, string>): { label: string; value: string }[] {
  return Object.entries(labels).map(([label, value]) => ({ label, value }));
}

/** Probe timing shared by every container: every 5 s, 3 s to answer; what starts slowly gets a longer start period and more retries. */
export function healthcheck(test: string[], o: { startPeriod: string; retries: number }) {
  return { test, interval: '5s', timeout: '3s', startPeriod: o.startPeriod, retries: o.retries };
}

/**
 * An HTTP GET that must answer 2xx, made with the image's own tool: `node` (the app image has
 * no wget) or `wget` (the Prometheus and Grafana images).
 */
export function httpHealthcheck(url: string, tool: 'node' | 'wget', o: { startPeriod: string; retries: number }) {
  const test =
    tool === 'node'
      ? ['CMD', 'node', '-e', `fetch('${url}').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`]
      : ['CMD', 'wget', '-q', '-O', '/dev/null', url];
  return healthcheck(test, o);
}

/** How Docker stops a container: the signal, then the grace (seconds) before it kills, on stop and on destroy alike. */
export function stopAttributes(signal: 'SIGTERM' | 'SIGQUIT', graceMs: number) {
  const seconds = Math.ceil(graceMs / 1000);
  return { stopSignal: signal, stopTimeout: seconds, destroyGraceSeconds: seconds };
}

/** A spec's health check in the provider's shape. */
export function specHealthcheck(health: HttpHealth | CommandHealth) {
  const timing = { startPeriod: `${Math.ceil(health.startPeriodMs / 1000)}s`, retries: health.retries };
  return 'url' in health ? httpHealthcheck(health.url, health.probe, timing) : healthcheck(['CMD-SHELL', health.command], timing);
}

/** The command a container runs: none when the image's entrypoint runs without arguments. */
function commandOf(spec: ComponentSpec): { command?: string[] } {
  const command = spec.imageEntrypoint ? spec.argv.slice(1) : [...spec.argv];
  return command.length ? { command } : {};
}

/**
 * A component spec as a `docker_container`'s attributes: the command, environment, stop and
 * health check, capabilities, sysctls and open-file limit. The image, network, mounts (where the
 * spec's files come from) and restart policy are the construct's.
 */
export function containerOf(spec: ComponentSpec) {
  return {
    ...commandOf(spec),
    ...(spec.env && Object.keys(spec.env).length ? { env: containerEnv(spec.env) } : {}),
    ...(spec.stop ? stopAttributes(spec.stop.signal, spec.stop.graceMs) : {}),
    ...(spec.health ? { healthcheck: specHealthcheck(spec.health) } : {}),
    ...(spec.capabilities?.length ? { capabilities: { add: [...spec.capabilities] } } : {}),
    ...(spec.sysctls ? { sysctls: { ...spec.sysctls } } : {}),
    ...(spec.openFiles ? { ulimit: [{ name: 'nofile', soft: spec.openFiles, hard: spec.openFiles }] } : {}),
  };
}
