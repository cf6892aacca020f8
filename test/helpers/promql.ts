/**
 * Metric names in a PromQL expression, for checking that dashboards and rules use names the
 * system really exports. A small scanner, not a parser: strings, label matchers, ranges,
 * grouping clauses, numbers and Grafana variables are removed; an identifier followed by "(" is
 * a function or aggregation; the rest are metric names. Syntax itself is checked by a real
 * Prometheus (its query API refuses what it cannot parse).
 */
const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'inf',
  'nan',
  'Inf',
  'NaN',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'atan2',
]);

export function metricNames(expr: string): string[] {
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ')
    .replace(/\boffset\s+\S+/g, ' ')
    .replace(/(^|[^\w:])\d+(\.\d+)?(e[+-]?\d+)?/gi, '$1 ');
  const names = new Set<string>();
  for (const m of s.matchAll(/[A-Za-z_:][\w:]*/g)) {
    const after = s.slice(m.index! + m[0].length).trimStart();
    if (after.startsWith('(') || KEYWORDS.has(m[0])) continue;
    names.add(m[0]);
  }
  return [...names].sort();
}

/** Grafana's variables replaced by values a plain Prometheus query accepts. */
export function withoutGrafanaVariables(expr: string): string {
  return expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '1m').replace(/\$\{?replica\}?/g, '.*');
}
