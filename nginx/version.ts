/** Compares dotted nginx versions ("1.22.1" vs "1.29.7"); missing parts count as 0. */
export function versionAtLeast(version: string, minimum: string): boolean {
  const a = version.split('.').map(Number);
  const b = minimum.split('.').map(Number);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const diff = (a[i] ?? 0) - (b[i] ?? 0);
    if (diff !== 0) return diff > 0;
  }
  return true;
}

/** Since 1.29.7 `proxy_http_version 1.1` is the default, so the directive is only emitted before it. */
export const HTTP11_DEFAULT_SINCE = '1.29.7';
