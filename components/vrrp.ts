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
