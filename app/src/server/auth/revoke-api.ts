import type { IncomingMessage } from 'node:http';
import { REVOKE_API_PATH } from '../../shared/protocol';
import { bearerMatches } from '../bearer';
import { postAccepted, readJsonBody, replyJson, type Reply } from '../http-json';
import type { Revocation } from './revocations';

export interface RevokeApiTarget {
  /** The publish API's bearer key; undefined: the API is off (404). */
  readonly apiKey?: string;
  /** Whether auth is on: without it there is nothing to revoke (409). */
  readonly authOn: boolean;
  /** Stores it for every replica; resolves with where it reached ('fleet' through the broker, or 'replica'). */
  revoke(r: Revocation): Promise<'fleet' | 'replica'>;
}

/**
 * POST /api/revoke {sub} or {jti, exp} with the publish API's `Authorization: Bearer <key>`.
 * `sub`: every token of that subject issued before now (its open connections close with 4501
 * within the sweep, and later connects with those tokens are refused); `jti`: that one token,
 * until its `exp` (seconds). 202 once stored in the broker's revocation bucket; 4xx naming the field.
 */
export async function serveRevokeApi(req: IncomingMessage, reply: Reply, target: RevokeApiTarget): Promise<void> {
  const json = (status: number, body: unknown, headers: Record<string, string> = {}) => replyJson(reply, status, body, headers);
  const refuse = (status: number, field: string, error: string) => json(status, { field, error });
  const off = target.apiKey === undefined ? 'the admin API is off (no key configured: server.apiKeyFile)' : undefined;
  if (!postAccepted(req, reply, { path: REVOKE_API_PATH, off }) || target.apiKey === undefined) return;
  if (!bearerMatches(req.headers.authorization, target.apiKey)) return refuse(401, 'Authorization', 'a valid "Bearer <key>" is required');
  if (!target.authOn) return json(409, { error: 'auth is off (auth.mode none): no token to revoke' });
  const read = await readJsonBody(req, 4096);
  if (!read.ok) return read.problem === 'aborted' ? undefined : refuse(read.problem === 'too_large' ? 413 : 400, '(body)', read.message);
  const body = (typeof read.value === 'object' && read.value !== null ? read.value : {}) as Record<string, unknown>;
  const text = (v: unknown) => typeof v === 'string' && v.length > 0 && v.length <= 256;
  let revocation: Revocation;
  if (body.sub !== undefined) {
    if (!text(body.sub)) return refuse(400, 'sub', 'must be a string of 1 to 256 characters');
    const at = Date.now();
    revocation = { sub: body.sub as string, before: Math.floor(at / 1000), at };
  } else if (body.jti !== undefined) {
    if (!text(body.jti)) return refuse(400, 'jti', 'must be a string of 1 to 256 characters');
    if (!Number.isSafeInteger(body.exp)) return refuse(400, 'exp', "must be the token's exp (seconds since the epoch)");
    revocation = { jti: body.jti as string, until: body.exp as number };
  } else return refuse(400, '(body)', 'must be {sub} or {jti, exp}');
  const scope = await target.revoke(revocation);
  return json(202, { ...revocation, scope });
}
