/**
 * The only Terraform expressions the offline applier accepts: a whole string that is one
 * reference `${type.name.attribute}`, and in postconditions `${self.attribute == number}`.
 * Anything else fails loudly, naming where it stands. Other strings are literals, with
 * Terraform's escapes (`$${` for `${`, `%%{` for `%{`) undone.
 */
export class UnsupportedError extends Error {}

const REFERENCE = /^\$\{([a-z_]+)\.([A-Za-z0-9_-]+)\.([a-z_]+)\}$/;
const SELF_CONDITION = /^\$\{self\.([a-z_]+) == (-?\d+)\}$/;

export interface Reference {
  address: string;
  attribute: string;
}

function parseReference(value: string): Reference | undefined {
  const m = REFERENCE.exec(value);
  return m ? { address: `${m[1]}.${m[2]}`, attribute: m[3] } : undefined;
}

/** Whether a string holds a template sequence (`${` or `%{`) that is not escaped. */
function hasTemplate(value: string): boolean {
  return /(^|[^$])\$\{|(^|[^%])%\{/.test(value);
}

/** A literal string's text: Terraform's escapes undone. */
export function literal(value: string): string {
  return value.replace(/\$\$\{/g, () => '${').replace(/%%\{/g, () => '%{');
}

/** Every reference inside a value (for dependency order). Throws on any other template sequence. */
export function referencesIn(value: unknown, where: string, out: Reference[] = []): Reference[] {
  if (typeof value === 'string') {
    if (hasTemplate(value)) {
      const ref = parseReference(value);
      if (!ref) throw new UnsupportedError(`${where}: unsupported expression ${JSON.stringify(value)}`);
      out.push(ref);
    }
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => referencesIn(v, `${where}[${i}]`, out));
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) referencesIn(v, `${where}.${k}`, out);
  }
  return out;
}

/** Replaces references with the attributes of resources already applied. */
export function resolve(value: unknown, attrs: (address: string) => Record<string, unknown> | undefined, where: string): unknown {
  if (typeof value === 'string') {
    const ref = parseReference(value);
    if (!ref) return literal(value);
    const a = attrs(ref.address);
    if (!a || !(ref.attribute in a))
      throw new UnsupportedError(`${where}: ${ref.address}.${ref.attribute} is not known (unsupported attribute or missing resource)`);
    return a[ref.attribute];
  }
  if (Array.isArray(value)) return value.map((v, i) => resolve(v, attrs, `${where}[${i}]`));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v, attrs, `${where}.${k}`)]));
  }
  return value;
}

/** Parses `${self.attribute == number}`; anything else is refused. */
export function parseSelfCondition(condition: string, where: string): { attribute: string; equals: number } {
  const m = SELF_CONDITION.exec(condition);
  if (!m) throw new UnsupportedError(`${where}: unsupported condition ${JSON.stringify(condition)}`);
  return { attribute: m[1], equals: Number(m[2]) };
}

export function evaluateSelfCondition(condition: string, self: Record<string, unknown>, where: string): boolean {
  const { attribute, equals } = parseSelfCondition(condition, where);
  if (!(attribute in self)) throw new UnsupportedError(`${where}: self.${attribute} is not an attribute the applier knows`);
  return Number(self[attribute]) === equals;
}
