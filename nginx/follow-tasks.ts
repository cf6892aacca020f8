import { CONTROL_PATHS } from '../app/src/shared/control';
import { tasksOf, type Topology } from '../app/src/topology';
import { reloadPlan } from '../control/reload';

/** Where the follower finds nginx inside its container. */
export interface FollowOptions {
  /** The servers' swarm service: its tasks are `tasks.<service>`. */
  readonly service: string;
  readonly configFile: string;
  readonly pidFile: string;
}

/**
 * The swarm target's proxy follows the servers' tasks by itself: a POSIX shell loop beside
 * nginx in its container. nginx resolves `tasks.<service>` to one upstream peer per task when
 * it loads its config, so a scale needs only a reload, and the rendered config never changes.
 * Every `swarm.followIntervalMs` the loop resolves the name; when the set of addresses changed it
 * checks the config, reloads nginx, waits for the new workers, and tells every task which they
 * are (the engine target's reload announcement, control/reload.ts): each task then closes the
 * connections still on retired workers with 1001, spread over the window, before nginx's
 * worker_shutdown_timeout would cut them. Connections to tasks that stay are never cut.
 * Pure: same input, same text.
 */
export function renderFollowScript(topology: Topology, options: FollowOptions): string {
  const { proxy, server, swarm } = topology;
  const plan = reloadPlan(proxy);
  const name = tasksOf(options.service);
  const interval = (swarm.followIntervalMs / 1000).toFixed(1);
  return `#!/bin/sh
# Rendered by ws-notifications from the topology; do not edit by hand.
# Follows ${name}: on a change, reload nginx and announce its new workers to every task.
set -u
log() { echo "follow-tasks: $*" >&2; }
tasks() { getent ahostsv4 ${name} | awk '{ print $1 }' | sort -u | tr '\\n' ' '; }
# The master's workers running the current configuration (not "shutting down").
workers() {
  master=$(cat ${options.pidFile} 2>/dev/null) || return 0
  for d in /proc/[0-9]*; do
    [ "$(sed -n 's/^PPid:[[:space:]]*//p' "$d/status" 2>/dev/null)" = "$master" ] || continue
    case "$(tr '\\0' ' ' < "$d/cmdline" 2>/dev/null)" in
      *"shutting down"*) ;;
      *"worker process"*) echo "\${d#/proc/}" ;;
    esac
  done | sort -n | tr '\\n' ' '
}
known=$(tasks)
log "following ${name} every ${interval} s: $known"
while sleep ${interval}; do
  now=$(tasks)
  [ -n "$now" ] && [ "$now" != "$known" ] || continue
  if ! nginx -t -q -c ${options.configFile}; then log "config check failed; nginx not reloaded"; continue; fi
  before=$(workers)
  kill -HUP "$(cat ${options.pidFile})"
  i=0
  while [ $i -lt 150 ]; do
    current=$(workers)
    [ -n "$current" ] && [ "$current" != "$before" ] && break
    i=$((i + 1)); sleep 0.1
  done
  known=$now
  list=$(echo $current | tr ' ' ',')
  body="{\\"proxy\\":\\"$(cat /proc/sys/kernel/hostname)\\",\\"workers\\":[$list],\\"shedAfterMs\\":${plan.shedAfterMs},\\"windowMs\\":${plan.windowMs},\\"maxStaleGenerations\\":${plan.maxStaleGenerations}}"
  for address in $now; do
    curl -fsS -m 5 -X POST -H 'content-type: application/json' -d "$body" "http://$address:${server.port}${CONTROL_PATHS.proxyWorkers}" >/dev/null \\
      || log "$address did not take the announcement: its connections on retired workers wait for nginx's deadline"
  done
  log "tasks now $now; reloaded, workers $current announced"
done
`;
}
