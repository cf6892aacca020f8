import type { Topology } from '../app/src/topology';
import { renderCheckScript, renderKeepalivedConf, renderNotifyScript } from '../keepalived/render';
import type { ComponentSpec } from './spec';

/** How keepalived (the HA pair's VRRP) is started, on every target: in the foreground, logging to the console. */
export function keepalivedArgv(o: { config: string; pidFile: string; vrrpPidFile: string }): string[] {
  return [
    'keepalived',
    '--dont-fork',
    '--log-console',
    '--log-detail',
    '--vrrp',
    '--use-file',
    o.config,
    '--pid',
    o.pidFile,
    '--vrrp_pid',
    o.vrrpPidFile,
  ];
}

export interface VrrpLaunch {
  /** Which proxy of the pair (0-based): its priority. */
  readonly index: number;
  /** The proxy it sits beside, as its state metric names it. */
  readonly proxy: string;
  /** The interface that carries the virtual address. */
  readonly interface: string;
  /** Where its config and scripts are. */
  readonly configDir: string;
  /** Where it writes its state and metric (notify.sh). */
  readonly stateDir: string;
  /** Where its pid files go (keepalived.pid, keepalived-vrrp.pid). */
  readonly pidDir: string;
  /** The port nginx answers stub_status on, for the check. */
  readonly statusPort: number;
  /**
   * The config's file name in configDir; "$VAR" for a shell to expand.
   * @default keepalived.conf
   */
  readonly configName?: string;
}

/**
 * keepalived beside one proxy of the HA pair, with its bundle, in this order: keepalived.conf
 * (this proxy's priority), check.sh (the proxy's nginx answers) and notify.sh (its state and
 * metric). It adds
 * and removes the virtual address and speaks VRRP on a raw socket: NET_ADMIN and NET_RAW.
 */
export function vrrpSpec(topology: Topology, o: VrrpLaunch): ComponentSpec {
  const config = `${o.configDir}/${o.configName ?? 'keepalived.conf'}`;
  const check = `${o.configDir}/check.sh`;
  const notify = `${o.configDir}/notify.sh`;
  return {
    argv: keepalivedArgv({ config, pidFile: `${o.pidDir}/keepalived.pid`, vrrpPidFile: `${o.pidDir}/keepalived-vrrp.pid` }),
    files: [
      {
        path: config,
        content: renderKeepalivedConf(topology, {
          index: o.index,
          interface: o.interface,
          checkScript: `/bin/bash ${check}`,
          notifyScript: `/bin/sh ${notify}`,
        }),
      },
      { path: check, content: renderCheckScript(o.statusPort), mode: 0o555 },
      {
        path: notify,
        content: renderNotifyScript({ proxy: o.proxy, stateFile: `${o.stateDir}/state`, metricFile: `${o.stateDir}/vrrp.prom` }),
        mode: 0o555,
      },
    ],
    stop: { signal: 'SIGTERM', graceMs: 5_000 },
    capabilities: ['NET_ADMIN', 'NET_RAW'],
  };
}
