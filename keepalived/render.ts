import { haPriorities, haProxyName, parseCidr, type Topology } from '../app/src/topology';
import { NGINX_STATUS_PATH } from '../nginx/render';

/** Where one proxy's keepalived runs: the interface on the service network, and its scripts. */
export interface KeepalivedRenderOptions {
  /** Which proxy (0-based): its priority and name. */
  readonly index: number;
  /** The interface facing the clients' network (eth0 in a container). */
  readonly interface: string;
  /** The check that demotes this node: exits 0 while its nginx is alive and stub_status answers. */
  readonly checkScript: string;
  /** Called with the new state (MASTER, BACKUP, FAULT): records it for the metrics. */
  readonly notifyScript: string;
}

/** The VRRP instance's name: one home, for the notify script and the tests. */
export const VRRP_INSTANCE = 'WS_PROXY';

/** keepalived's durations are seconds, with decimals. */
const seconds = (ms: number) => String(Math.round(ms) / 1000);

/**
 * keepalived.conf for one proxy of the HA pair (topology.proxy.ha). Pure: same input, same text.
 * Every node starts as BACKUP: the highest priority wins the first election, and with
 * `preempt: false` (nopreempt) a node that comes back does not take the address from the one
 * now holding the clients' connections.
 */
export function renderKeepalivedConf(topology: Topology, options: KeepalivedRenderOptions): string {
  const { ha, containerName } = topology.proxy;
  if (!ha.enabled || !ha.virtualAddress) throw new Error('renderKeepalivedConf: proxy.ha is not enabled');
  const priorities = haPriorities(ha);
  if (!Number.isInteger(options.index) || options.index < 0 || options.index >= priorities.length) {
    throw new Error(`renderKeepalivedConf: index ${options.index} is not one of the ${priorities.length} proxies`);
  }
  // The address lives on the service network (engine), or on the nodes' own network (swarm).
  const subnet = topology.target === 'swarm' ? topology.swarm.nodeSubnet : topology.network.subnet;
  const prefix = parseCidr(subnet ?? '')?.prefix ?? 32;
  const check = ha.check;
  return `# Rendered from the topology (proxy.ha) by keepalived/render.ts; do not edit.
global_defs {
    router_id ${haProxyName(containerName, options.index)}
    # VRRPv3: advert intervals below a second (v2 allows whole seconds only).
    vrrp_version 3
    script_user root
    enable_script_security
}

# Demotes this node when its nginx is down or stub_status stops answering.
vrrp_script proxy_alive {
    script "${options.checkScript}"
    interval ${seconds(check.intervalMs)}
    timeout ${seconds(check.intervalMs)}
    fall ${check.fall}
    rise ${check.rise}
}

vrrp_instance ${VRRP_INSTANCE} {
    state BACKUP
    interface ${options.interface}
    virtual_router_id ${ha.routerId}
    priority ${priorities[options.index]}
    advert_int ${seconds(ha.advertIntervalMs)}
${ha.preempt ? '' : '    # A node that comes back stays BACKUP: taking the address back would move every client again.\n    nopreempt\n'}    virtual_ipaddress {
        ${ha.virtualAddress}/${prefix} dev ${options.interface}
    }
    track_script {
        proxy_alive
    }
    notify "${options.notifyScript}"
}
`;
}

/**
 * keepalived's check: this node's nginx is alive and its stub_status answers (on the status
 * port, from inside its network namespace). bash's /dev/tcp: nothing beyond bash is needed.
 */
export function renderCheckScript(statusPort: number): string {
  return `#!/bin/bash
# Exit 0 while this node's nginx answers stub_status (keepalived demotes the node otherwise).
exec 3<>/dev/tcp/127.0.0.1/${statusPort} || exit 1
printf 'GET ${NGINX_STATUS_PATH} HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3
grep -q '^Active connections' <&3
`;
}

/** The metric the pair exposes (through each proxy's status port): 1 on the node holding the address. */
export const VRRP_MASTER_METRIC = 'ws_proxy_vrrp_master';

/**
 * keepalived's notify script (called as: notify TYPE NAME STATE PRIORITY): records the node's
 * state in a file and as the metric above, each replaced whole (write, then rename).
 */
export function renderNotifyScript(o: { proxy: string; stateFile: string; metricFile: string }): string {
  return `#!/bin/sh
# keepalived runs scripts with umask 077; nginx's workers (not root) serve the metric.
umask 022
[ "$3" = MASTER ] && v=1 || v=0
printf '%s\\n' "$3" > '${o.stateFile}.new' && mv '${o.stateFile}.new' '${o.stateFile}'
cat > '${o.metricFile}.new' <<EOF
# HELP ${VRRP_MASTER_METRIC} 1 while this proxy holds the virtual address (keepalived state MASTER).
# TYPE ${VRRP_MASTER_METRIC} gauge
${VRRP_MASTER_METRIC}{proxy="${o.proxy}",state="$3"} $v
EOF
mv '${o.metricFile}.new' '${o.metricFile}'
`;
}
