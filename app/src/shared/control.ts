import { z } from 'zod';
import { rebalanceSchema } from '../topology/schema';

/**
 * The replicas' internal control endpoints, shared by the server and by whoever reloads nginx or
 * rebalances (the local runner, the stack's reload step). They answer on the replica's own port,
 * which nginx does not route (only the WebSocket path is proxied) and Docker does not publish.
 */
export const CONTROL_PATHS = {
  /** POST a ProxyWorkersAnnouncement after a reload. */
  proxyWorkers: '/internal/proxy-workers',
  /** POST a ShedRequest (rebalance). */
  shed: '/internal/shed',
  /** GET a ConnectionsReport. */
  connections: '/internal/connections',
} as const;

/**
 * The request header nginx stamps on every proxied handshake: `<hostname>/<worker pid>`, so a
 * replica knows which nginx worker carries each connection (several proxies may share pids).
 */
export const PROXY_WORKER_HEADER = 'x-ws-proxy-worker';

/** Parses the header's value; undefined for a connection that did not come through our nginx. */
export function parseProxyWorker(value: string | string[] | undefined): { proxy: string; pid: number } | undefined {
  const match = typeof value === 'string' ? /^([^/\s]{1,255})\/(\d{1,10})$/.exec(value) : null;
  return match ? { proxy: match[1], pid: Number(match[2]) } : undefined;
}

/** After a reload: these are the proxy's current workers; connections through any other are retired. */
export const proxyWorkersAnnouncementSchema = z
  .object({
    /** The proxy's hostname, as in the header. */
    proxy: z.string().min(1).max(255),
    /** Pids of the workers the new configuration runs; none: the proxy is stopping, all its connections retire. */
    workers: z.array(z.number().int().positive()),
    /**
     * Pids of the workers the reload retired, as the announcer saw them. A handshake still in
     * flight through one of them when this arrives joins the wave even if that worker held
     * nothing here yet (else nginx's deadline would cut it, 1006).
     */
    retired: z.array(z.number().int().positive()).max(1024).default([]),
    /** Keep retired workers' connections this long before the first 1001. */
    shedAfterMs: z.number().int().min(0),
    /** Spread the 1001s over this window. */
    windowMs: z.number().int().min(0),
    /** Reloads whose retired connections may be held at once; older ones are shed at once. */
    maxStaleGenerations: z.number().int().min(0),
  })
  .strict();
export type ProxyWorkersAnnouncement = z.infer<typeof proxyWorkersAnnouncementSchema>;
/** An announcement's timing, the same for every reload of a proxy (proxy.reload). */
export type AnnouncementTiming = Omit<ProxyWorkersAnnouncement, 'proxy' | 'workers' | 'retired'>;

/**
 * A rebalance round: close this many connections with 1001, spread over the window, and while
 * the round lasts refuse handshakes (503, which nginx passes to the next replica) once holding
 * `holdAtMost`. Without that cap the shed clients would come straight back: after a reload
 * nginx's least_conn counts only the connections its new workers carry.
 */
export const shedRequestSchema = z
  .object({
    count: z.number().int().min(0),
    windowMs: z.number().int().min(0),
    holdAtMost: z.number().int().min(0).optional(),
    /** How long the cap lasts (from now); the window plus time for the clients to come back. */
    capForMs: z.number().int().min(0).default(0),
  })
  .strict();
export type ShedRequest = z.infer<typeof shedRequestSchema>;

export interface ConnectionsReport {
  replica: string;
  /** Open connections. */
  connections: number;
  /** Connections through retired proxy workers, waiting for their 1001. */
  retired: number;
  /** Connections already scheduled for a 1001 (retired or rebalanced). */
  shedding: number;
  draining: boolean;
}

export interface ShedReply {
  /** Connections newly scheduled for a 1001. */
  scheduled: number;
}

export interface AnnouncementReply extends ShedReply {
  /** Retired workers still holding connections here, after this announcement. */
  retiredWorkers: number;
}

/**
 * What the stack's reload step runs (scripts/proxy-reload.ts), rendered at synth from the
 * topology and passed in this environment variable, so what was synthesized is what runs.
 */
export const RELOAD_PLAN_ENV = 'WS_RELOAD_PLAN';

export const reloadPlanSchema = z
  .object({
    /** The proxy containers (two or more with the HA pair), reloaded one after the other. */
    proxies: z.array(z.string().min(1)).min(1),
    configFile: z.string().min(1),
    pidFile: z.string().min(1),
    workerProcesses: z.number().int().min(1),
    /** The replica containers and their port. */
    replicas: z.array(z.string().min(1)).min(1),
    port: z.number().int().min(1).max(65535),
    announce: proxyWorkersAnnouncementSchema.omit({ proxy: true, workers: true, retired: true }),
    /** Present when proxy.rebalance.enabled: a rebalance runs after the reload. */
    rebalance: rebalanceSchema.optional(),
  })
  .strict();
export type ReloadPlan = z.infer<typeof reloadPlanSchema>;
