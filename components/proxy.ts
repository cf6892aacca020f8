import { stopGraceMs, type Topology } from '../app/src/topology';
import { shellLine } from './shell';
import type { ComponentSpec } from './spec';

/** How nginx is started, on every target: in the foreground, so its supervisor sees it exit. */
export function nginxArgv(o: { config: string; prefix?: string }): string[] {
  return ['nginx', '-c', o.config, ...(o.prefix ? ['-p', o.prefix] : []), '-g', 'daemon off;'];
}

export interface ProxyLaunch {
  /** nginx.conf's path. */
  readonly config: string;
  /** The pid file the config names: the health check reads it. */
  readonly pidFile: string;
  /**
   * nginx's prefix, where it opens logs/error.log before it reads the config.
   * @default nginx's own
   */
  readonly prefix?: string;
  /**
   * The follower (nginx/follow-tasks.ts) to run beside nginx, which stays the main process.
   * @default none
   */
  readonly follower?: string;
}

/**
 * nginx in front of the replicas. SIGQUIT is its graceful stop: in-flight handshakes finish.
 * WebSockets do not end by themselves, so waiting longer than the fleet's stop grace would only
 * delay a stop. The kernel caps its listen backlog at the namespace's somaxconn, and each
 * worker needs its descriptors.
 */
export function proxySpec(topology: Topology, o: ProxyLaunch): ComponentSpec {
  const nginx = nginxArgv({ config: o.config, prefix: o.prefix });
  const { proxy, server } = topology;
  return {
    argv: o.follower ? ['sh', '-c', `sh ${o.follower} & exec ${shellLine(nginx)}`] : nginx,
    health: { command: `test -s ${o.pidFile} && kill -0 "$(cat ${o.pidFile})"`, startPeriodMs: 2_000, retries: 3 },
    stop: { signal: 'SIGQUIT', graceMs: stopGraceMs(server) },
    sysctls: { 'net.core.somaxconn': String(proxy.listenBacklog) },
    openFiles: proxy.maxOpenFiles,
  };
}
