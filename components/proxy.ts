/** How nginx is started, on every target: in the foreground, so its supervisor sees it exit. */
export function nginxArgv(o: { config: string; prefix?: string }): string[] {
  return ['nginx', '-c', o.config, ...(o.prefix ? ['-p', o.prefix] : []), '-g', 'daemon off;'];
}
