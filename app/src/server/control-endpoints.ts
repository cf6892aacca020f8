import type { IncomingMessage } from 'node:http';
import type { z } from 'zod';
import {
  CONTROL_PATHS,
  proxyWorkersAnnouncementSchema,
  shedRequestSchema,
  type AnnouncementReply,
  type ConnectionsReport,
  type ProxyWorkersAnnouncement,
  type ShedReply,
} from '../shared/control';
import { CONTROL_KEY_ENV } from '../topology/server-env';
import { bearerMatches } from './bearer';
import { readJsonBody, replyJson, type Reply } from './http-json';
import type { Logger } from './logger';
import type { ShedCounts } from './shedding';

/** What the control endpoints act on: the replica's connections and its planned closes. */
export interface ControlTarget {
  /** The bearer key every call must carry; undefined: the endpoints are off (404). */
  readonly key?: string;
  readonly replicaId: string;
  connections(): number;
  draining(): boolean;
  /** After a proxy reload: plans the retired workers' connections; returns how many. */
  retire(a: ProxyWorkersAnnouncement): number;
  /** A rebalance round: plans `count` closes over the window; returns how many. */
  shed(count: number, windowMs: number): number;
  counts(): ShedCounts;
  /** Caps new handshakes at `limit` connections until `until` (epoch ms); undefined lifts it. */
  capUntil(limit: number | undefined, until: number): void;
  readonly log: Logger;
}

/**
 * The control endpoints (shared/control.ts), on the replica's own port. nginx proxies only the
 * WebSocket path and the publish API, and Docker does not publish the port, but anything on the
 * service network reaches it: every call carries the deployment's control key (a bearer key,
 * 401 without it). The local runner, the stack's reload step (through `docker exec`) and the
 * swarm follower have it. A draining replica plans nothing: the drain closes everyone.
 */
export async function serveControl(req: IncomingMessage, pathname: string, reply: Reply, target: ControlTarget): Promise<void> {
  const json = (status: number, body: unknown) => replyJson(reply, status, body);
  if (target.key === undefined) return json(404, { error: `the control endpoints are off (no key: ${CONTROL_KEY_ENV})` });
  if (!bearerMatches(req.headers.authorization, target.key)) return json(401, { error: 'a valid "Bearer <control key>" is required' });
  const post = async <S extends z.ZodType>(schema: S): Promise<z.infer<S> | undefined> => {
    if (req.method !== 'POST') return void json(405, { error: `${pathname} takes POST` });
    const body = await readJsonBody(req, 65_536);
    if (!body.ok) {
      if (body.problem !== 'aborted') json(body.problem === 'too_large' ? 413 : 400, { error: `body ${body.message}` });
      return undefined;
    }
    const parsed = schema.safeParse(body.value);
    if (!parsed.success)
      return void json(400, { error: parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ') });
    return parsed.data;
  };
  switch (pathname) {
    case CONTROL_PATHS.connections: {
      const counts = target.counts();
      return json(200, {
        replica: target.replicaId,
        connections: target.connections(),
        retired: counts.retired,
        shedding: counts.shedding,
        draining: target.draining(),
      } satisfies ConnectionsReport);
    }
    case CONTROL_PATHS.proxyWorkers: {
      const a = await post(proxyWorkersAnnouncementSchema);
      if (!a) return;
      const scheduled = target.draining() ? 0 : target.retire(a);
      const { retiredWorkers } = target.counts();
      target.log.info(
        {
          proxy: a.proxy,
          workers: a.workers,
          retired: a.retired,
          scheduled,
          retiredWorkers,
          shedAfterMs: a.shedAfterMs,
          windowMs: a.windowMs,
        },
        'proxy reloaded: connections of retired workers scheduled for 1001',
      );
      return json(200, { scheduled, retiredWorkers } satisfies AnnouncementReply);
    }
    case CONTROL_PATHS.shed: {
      const r = await post(shedRequestSchema);
      if (!r) return;
      const scheduled = target.draining() ? 0 : target.shed(r.count, r.windowMs);
      target.capUntil(r.holdAtMost, Date.now() + r.capForMs);
      target.log.info(
        { asked: r.count, scheduled, windowMs: r.windowMs, holdAtMost: r.holdAtMost },
        'rebalance: connections scheduled for 1001',
      );
      return json(200, { scheduled } satisfies ShedReply);
    }
    default:
      return json(404, { error: `no control endpoint ${pathname}` });
  }
}
