import { CONTROL_PATHS } from '../app/src/shared/control';
import { tasksOf, type Topology } from '../app/src/topology';
import { CHILDREN_FUNCTION, NEW_WORKERS_TIMEOUT_MS, TITLE_FUNCTION, UNREADABLE_TITLE, announcementTiming } from '../control/reload';

/** Where the follower finds nginx, and what it follows. */
export interface FollowOptions {
  readonly configFile: string;
  readonly pidFile: string;
  /** The replicas' control key (a secret file): every announcement carries it. */
  readonly controlKeyFile: string;
  /**
   * The swarm target: the servers' service, whose tasks (`tasks.<service>`) the follower resolves
   * at swarm.followIntervalMs and reloads nginx for when they change. Absent (the engine target,
   * the local runner): the upstream is fixed, and only reloads are watched.
   */
  readonly service?: string;
}

/** How often the follower looks at nginx's workers: an announcement comes this soon after any reload. */
const WATCH_INTERVAL_S = 0.5;
/** How long a reload may leave old and new workers side by side before the follower says so. */
const NEW_WORKERS_WAIT_S = NEW_WORKERS_TIMEOUT_MS / 1000;

/**
 * The follower beside nginx: a POSIX shell loop in the proxy's container (or beside the local
 * runner's nginx). Whoever reloads nginx (a deploy, a certificate hook's `nginx -s reload`,
 * `docker kill -s HUP`), the old workers keep their WebSockets until worker_shutdown_timeout and
 * then cut them (1006). So the loop watches the master's workers, and once a reload's new workers
 * are all up it tells every replica of the loaded config's upstream which they are (the
 * announcement of control/reload.ts, with the control key): each replica then closes the
 * connections still on retired workers with 1001, spread over the window, before nginx's deadline.
 * An announcement repeated by another reloader changes nothing (shedding.ts).
 *
 * On the swarm target it also follows the servers' tasks: nginx resolves `tasks.<service>` to
 * one upstream peer per task when it loads its config, so every `swarm.followIntervalMs` the
 * loop resolves the name, and when the set changed it checks the config and reloads nginx (then
 * announces as for any reload). Connections to tasks that stay are never cut. Pure: same input,
 * same text.
 */
export function renderFollowScript(topology: Topology, options: FollowOptions): string {
  const { proxy } = topology;
  return `#!/bin/sh
# Rendered by ws-notifications from the topology; do not edit by hand.
# Announces every reload's new nginx workers to the replicas${options.service ? `; follows ${tasksOf(options.service)}` : ''}.
set -u
log() { echo "follow-tasks: $*" >&2; }
${renderWorkerFunctions(proxy.workerProcesses, options.pidFile)}
${renderAnnounceFunctions(topology, options)}
${options.service ? renderTaskFunctions(topology, options.service, options.configFile, options.pidFile) : ''}
key=$(cat ${options.controlKeyFile}) || { log "cannot read the control key ${options.controlKeyFile}"; exit 1; }
known=$(workers)
since=0
# When the reload being waited for began (ms): nginx's deadline for the old workers runs from
# then, so the announcement's delay counts against shedAfterMs (a slow announcement must not
# push the replicas' 1001s past the deadline).
changed_at=""
now_ms() { t=$(date +%s%3N 2>/dev/null); case $t in ''|*[!0-9]*) echo $(($(date +%s) * 1000)) ;; *) echo "$t" ;; esac; }
log "watching nginx's workers every ${WATCH_INTERVAL_S} s${options.service ? `; following ${tasksOf(options.service)} every ${(topology.swarm.followIntervalMs / 1000).toFixed(1)} s` : ''}"
while sleep ${WATCH_INTERVAL_S}; do
${options.service ? '  follow_tasks\n' : ''}  now=$(workers)
  if [ "$now" = "$known" ]; then since=0; continue; fi
  [ -n "$changed_at" ] || changed_at=$(now_ms)
  # Mid-reload (old and new listed together) or a worker respawned: wait for a whole new set.
  if ! fresh "$known" "$now"; then
    since=$((since + 1))
    [ $since -ge ${Math.round(NEW_WORKERS_WAIT_S / WATCH_INTERVAL_S)} ] || continue
    # No whole new set in time (a worker crashed and was replaced, or a reload stalled): this set
    # is the one the next reload replaces, and that reload's delay counts from its own start.
    log "workers $now are not a whole new set after ${NEW_WORKERS_WAIT_S} s (before: $known); waiting for the next reload"
    known=$now
    since=0
    changed_at=""
    continue
  fi
  since=0
  announce "$now" "$known" "$(( $(now_ms) - \${changed_at:-$(now_ms)} ))"
  known=$now
  changed_at=""
done
`;
}

/** The shell functions that tell the replicas a reload's workers. */
export function renderAnnounceFunctions(topology: Topology, options: FollowOptions): string {
  const plan = announcementTiming(topology.proxy);
  return `# Every replica address (ipv4:port) of the loaded config's upstream; a name resolves to all its addresses.
peers() {
  awk '$1 == "server" && $2 ~ /:[0-9]+$/ { print $2 }' ${options.configFile} | sort -u | while read -r peer; do
    getent ahostsv4 "\${peer%:*}" | awk -v port="\${peer##*:}" '{ print $1 ":" port }'
  done | sort -u
}
# Tells every replica that $1 are the proxy's current workers, and $2 those the reload retired,
# $3 ms after the reload began (taken off shedAfterMs).
announce() {
  list=$(echo $1 | tr ' ' ',')
  retired=$(echo $2 | tr ' ' ',')
  after=$(( ${plan.shedAfterMs} - \${3:-0} )); [ "$after" -ge 0 ] || after=0
  body="{\\"proxy\\":\\"$(cat /proc/sys/kernel/hostname)\\",\\"workers\\":[$list],\\"retired\\":[$retired],\\"shedAfterMs\\":$after,\\"windowMs\\":${plan.windowMs},\\"maxStaleGenerations\\":${plan.maxStaleGenerations}}"
  told=0
  for peer in $(peers); do
    if curl -fsS -m 5 -X POST -H 'content-type: application/json' -H "authorization: Bearer $key" -d "$body" "http://$peer${CONTROL_PATHS.proxyWorkers}" >/dev/null; then
      told=$((told + 1))
    else
      log "$peer did not take the announcement: its connections on retired workers wait for nginx's deadline"
    fi
  done
  log "workers $1 announced to $told replica(s)"
}`;
}

/** The swarm target's shell functions that follow the servers' tasks. */
function renderTaskFunctions(topology: Topology, service: string, configFile: string, pidFile: string): string {
  const name = tasksOf(service);
  const every = Math.max(1, Math.round(topology.swarm.followIntervalMs / 1000 / WATCH_INTERVAL_S));
  return `tasks() { getent ahostsv4 ${name} | awk '{ print $1 }' | sort -u | tr '\\n' ' '; }
tasks_known=$(tasks)
tick=0
# Every ${every} ticks: when the tasks changed, check the config and reload nginx.
follow_tasks() {
  tick=$((tick + 1))
  [ $((tick % ${every})) -eq 0 ] || return 0
  tasks_now=$(tasks)
  [ -n "$tasks_now" ] && [ "$tasks_now" != "$tasks_known" ] || return 0
  if ! nginx -t -q -c ${configFile}; then log "config check failed; nginx not reloaded"; return 0; fi
  kill -HUP "$(cat ${pidFile})"
  changed_at=$(now_ms)
  tasks_known=$tasks_now
  log "tasks now $tasks_now; nginx reloaded"
}`;
}

/**
 * The follower's shell functions that find nginx's workers (tested on their own against a real
 * nginx). Right after a HUP the master has started the new workers while the old ones have not
 * yet renamed themselves "shutting down": both look current then. The reload's workers are known
 * only once exactly \`count\` are listed and all of them are new, the rule of reloadAndAnnounce
 * (control/reload.ts).
 * Announcing the mix would tell the replicas that retired workers are current, and their
 * connections would be cut at nginx's deadline instead of shed.
 */
export function renderWorkerFunctions(count: number, pidFile: string): string {
  return `# The master's children: from the kernel's list where it keeps one, else by a scan of /proc.
${CHILDREN_FUNCTION}
# A child's title; ${UNREADABLE_TITLE} when it cannot be read.
${TITLE_FUNCTION}
# The master's workers running the current configuration (not "shutting down"). A child whose
# title cannot be read is listed too: dropped, an old worker would be missing from the set a
# reload is compared with, and could pass for a new one.
workers() {
  master=$(cat ${pidFile} 2>/dev/null) || return 0
  for p in $(children "$master"); do
    case "$(title "$p")" in
      *"shutting down"*) ;;
      *"worker process"* | ${UNREADABLE_TITLE}) echo "$p" ;;
    esac
  done | sort -n | tr '\\n' ' '
}
# True when $2 lists exactly ${count} workers (worker_processes), none of them in $1: more is a
# mix of old and new.
fresh() {
  [ "$(echo $2 | wc -w)" -eq ${count} ] || return 1
  for w in $2; do case " $1 " in *" $w "*) return 1 ;; esac; done
}`;
}
