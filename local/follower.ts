import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Topology } from '../app/src/topology';
import { renderFollowScript } from '../nginx/follow-tasks';
import { stop, type Owned, type start } from './processes';

/**
 * The follower beside a local nginx, as beside nginx in the proxy containers
 * (nginx/follow-tasks.ts): whoever reloads this nginx, the replicas are told its new workers.
 * `enter` runs it where nginx runs (an HA proxy's namespaces), so it reads that host name.
 */
export function startFollower(
  topology: Topology,
  options: {
    name: string;
    dir: string;
    configFile: string;
    pidFile: string;
    controlKeyFile: string;
    own: (...args: Parameters<typeof start>) => Owned;
    enter?: (argv: string[]) => string[];
  },
): Owned {
  const script = join(options.dir, 'follow-tasks.sh');
  writeFileSync(
    script,
    renderFollowScript(topology, { configFile: options.configFile, pidFile: options.pidFile, controlKeyFile: options.controlKeyFile }),
  );
  const [command, ...args] = (options.enter ?? ((argv) => argv))(['sh', script]);
  return options.own(`${options.name}-follower`, command, args, {
    cwd: options.dir,
    logFile: join(options.dir, 'logs', `${options.name}-follower.log`),
  });
}

/** Stops a follower with the `sleep` or `curl` it is running (its process group). */
export function stopFollower(follower: Owned): Promise<void> {
  return stop(follower, 'SIGTERM', 5_000, { group: true });
}
