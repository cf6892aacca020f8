import { timingSafeEqual } from 'node:crypto';

/**
 * Whether an `Authorization` header carries `Bearer <expected>`: the scheme in any case (RFC 9110
 * §11.1), the key compared in constant time. The publish API's key and the control endpoints'
 * secret are both checked here.
 */
export function bearerMatches(header: string | undefined, expected: string): boolean {
  const given = bearerOf(header);
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The credential of an `Authorization: Bearer <credential>` header, if it is one. */
export function bearerOf(header: string | undefined): string | undefined {
  return /^bearer +(\S+)$/i.exec(header ?? '')?.[1];
}
