import { CONTROL_PATHS } from '../app/src/shared/control';
import { tasksOf, type Topology } from '../app/src/topology';
import { NEW_WORKERS_TIMEOUT_MS, reloadPlan } from '../control/reload';

/** Where the follower finds nginx inside its container. */
export interface FollowOptions {
  /** The servers' swarm service: its tasks are `tasks.<service>`. */
  readonly service: string;
  readonly configFile: string;
  readonly pidFile: string;
  /** The replicas' control key (a secret file): every announcement carries it. */
  readonly controlKeyFile: string;
}

/** How long the follower waits for a reload's new workers: as long as the engine target's reload. */
const NEW_WORKERS_WAIT_S = NEW_WORKERS_TIMEOUT_MS / 1000;

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
${renderWorkerFunctions(proxy.workerProcesses, options.pidFile)}
key=$(cat ${options.controlKeyFile}) || { log "cannot read the control key ${options.controlKeyFile}"; exit 1; }
known=$(tasks)
log "following ${name} every ${interval} s: $known"
while sleep ${interval}; do
  now=$(tasks)
  [ -n "$now" ] && [ "$now" != "$known" ] || continue
  if ! nginx -t -q -c ${options.configFile}; then log "config check failed; nginx not reloaded"; continue; fi
  before=$(workers)
  kill -HUP "$(cat ${options.pidFile})"
  known=$now
  if ! current=$(new_workers "$before"); then
    log "nginx started no new workers within ${NEW_WORKERS_WAIT_S} s of the reload (before: $before); not announced: connections on retired workers wait for nginx's deadline"
    continue
  fi
  list=$(echo $current | tr ' ' ',')
  body="{\\"proxy\\":\\"$(cat /proc/sys/kernel/hostname)\\",\\"workers\\":[$list],\\"shedAfterMs\\":${plan.shedAfterMs},\\"windowMs\\":${plan.windowMs},\\"maxStaleGenerations\\":${plan.maxStaleGenerations}}"
  for address in $now; do
    curl -fsS -m 5 -X POST -H 'content-type: application/json' -H "authorization: Bearer $key" -d "$body" "http://$address:${server.port}${CONTROL_PATHS.proxyWorkers}" >/dev/null \\
      || log "$address did not take the announcement: its connections on retired workers wait for nginx's deadline"
  done
  log "tasks now $now; reloaded, workers $current announced"
done
`;
}

/**
 * The follower's shell functions that find nginx's workers (tested on their own against a real
 * nginx). Right after a HUP the master has started the new workers while the old ones have not
 * yet renamed themselves "shutting down": both look current then. The reload's workers are known
 * only once all \`count\` of them are new, the rule of reloadAndAnnounce (control/reload.ts).
 * Announcing the mix would tell the tasks that retired workers are current, and their
 * connections would be cut at nginx's deadline instead of shed.
 */
export function renderWorkerFunctions(count: number, pidFile: string): string {
  return `# The master's workers running the current configuration (not "shutting down").
workers() {
  master=$(cat ${pidFile} 2>/dev/null) || return 0
  for d in /proc/[0-9]*; do
    [ "$(sed -n 's/^PPid:[[:space:]]*//p' "$d/status" 2>/dev/null)" = "$master" ] || continue
    case "$(tr '\\0' ' ' < "$d/cmdline" 2>/dev/null)" in
      *"shutting down"*) ;;
      *"worker process"*) echo "\${d#/proc/}" ;;
    esac
  done | sort -n | tr '\\n' ' '
}
# True when $2 lists ${count} workers or more, none of them in $1.
fresh() {
  [ "$(echo $2 | wc -w)" -ge ${count} ] || return 1
  for w in $2; do case " $1 " in *" $w "*) return 1 ;; esac; done
}
# After a reload: prints the new workers once they are all up and the old ones (listed in $1)
# have left the current list; fails after ${NEW_WORKERS_WAIT_S} s.
new_workers() {
  i=0
  while [ $i -lt ${NEW_WORKERS_WAIT_S * 10} ]; do
    current=$(workers)
    if fresh "$1" "$current"; then echo "$current"; return 0; fi
    i=$((i + 1)); sleep 0.1
  done
  return 1
}`;
}
