import { z } from 'zod';
import { cidrContains, haSchema, haProblems, parseCidr } from './ha';
import { swarmSchema, SWARM_STREAM_REPLICAS, TARGETS, type SwarmConfig, type Target } from './swarm';
import { topicPatternSchema, topologyAuthSchema, usesDevelopmentIdp } from './auth';
import { largestPayloadBytes, loadProfileSchema, peakConnections, peakRampRate } from '../shared/profile';
import { PAGE_CLIENT } from '../idp/clients';
import { PROCESS_OPEN_FILES } from './limits';

/**
 * The topology: one typed, validated object that the stack, the Nginx renderer, the server,
 * the load client, the local runner and the tests all read. A timeout or a limit is written
 * here once. Durations are milliseconds, sizes bytes.
 */
export const STRATEGIES = ['round_robin', 'least_conn', 'ip_hash', 'hash'] as const;
export type Strategy = (typeof STRATEGIES)[number];
export const COMPRESSION_MODES = ['off', 'offered', 'required'] as const;
export type CompressionMode = (typeof COMPRESSION_MODES)[number];

export { CONNECTIONS_PER_PROCESS, PROCESS_OPEN_FILES } from './limits';

/** Descriptors a worker keeps for itself (listeners, logs, pipes) beyond proxied sockets. */
export const NGINX_FD_SLACK = 256;
/** Headroom over an even split of connections across workers (reuseport hashing is not exact). */
export const NGINX_WORKER_HEADROOM = 1.1;

const port = z.number().int().min(1).max(65535);
const cidrText = z.string().refine((s) => parseCidr(s) !== undefined, 'must be an IPv4 block such as 172.30.0.0/24');
/** A Docker container name (also its host name on the network). */
const containerName = z.string().regex(/^[a-z0-9][a-z0-9_.-]*$/);
const positiveMs = z.number().int().positive();
const KiB = 1024;
const MiB = 1024 * KiB;

export const serverSchema = z
  .object({
    /** Port each replica listens on inside its container (or on loopback locally). */
    port: port.default(8080),
    /** The WebSocket path, shared by Nginx, the server and the client. */
    path: z
      .string()
      .regex(/^\/[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/, 'must be an absolute URL path such as /ws-notifications')
      .default('/ws-notifications'),
    /**
     * Centrifugo's client protocol (JSON, v2) at /connection/websocket beside `path`, through the
     * same proxy, replicas and broker, so its SDKs (`centrifuge` on npm and others) work unchanged.
     */
    centrifuge: z.boolean().default(true),
    /** Seed: ping every 30 s, "more often than Nginx's timeout". */
    pingIntervalMs: positiveMs.default(30_000),
    /** Seed: pong wait 60 s; a peer silent for this long is terminated. */
    pongTimeoutMs: positiveMs.default(60_000),
    /** Seed: write deadline 15 s per send. */
    writeTimeoutMs: positiveMs.default(15_000),
    /** Seed: read limit 64 KiB ("DoS protection"); larger messages close with 1009. */
    maxMessageBytes: z
      .number()
      .int()
      .min(125)
      .max(64 * MiB)
      .default(64 * KiB),
    /** permessage-deflate: off, offered (negotiated when the client asks) or required (seed: 400 without it). */
    compression: z.enum(COMPRESSION_MODES).default('offered'),
    /**
     * Where compressed connections' messages are deflated: `once` per message, the same bytes for every
     * connection (no deflate stream per connection); `per-connection`, ws's own stream on each, which
     * the compression bench compares against (docs/compression.md).
     */
    deflate: z.enum(['once', 'per-connection']).default('once'),
    /**
     * A connection's inflate stream (made when its client sends a compressed message) is released
     * after this long without a message from it, so quiet clients hold no zlib state.
     */
    inflateIdleMs: z.number().int().min(100).default(10_000),
    /**
     * Topic patterns (`repo.*`, `feed.>`) whose publications go as fossil deltas against the
     * topic's previous one to subscribers that ask (`delta: 'fossil'`) and hold that one. Needs
     * the broker: a delta is only sent to a subscriber positioned on the previous offset.
     */
    deltaTopics: z
      .array(topicPatternSchema.refine((p) => !p.includes('{sub}'), 'a delta topic pattern has no subject: {sub} cannot be used'))
      .default([]),
    /** A slow consumer whose unsent bytes pass this bound is closed (like Centrifugo's client queue). */
    sendBufferLimitBytes: z.number().int().min(KiB).default(MiB),
    /**
     * `turn`: the frames due for one connection in one turn of the event loop leave in one write
     * (which nginx can relay in one TLS record); `off`: each frame is a write of its own, what the fan-out
     * bench compares against (docs/benchmarks/fanout.md).
     */
    writeCoalescing: z.enum(['turn', 'off']).default('turn'),
    /** Per-replica connection cap; handshakes beyond it get 503. */
    maxConnections: z.number().int().positive().default(50_000),
    /** Topics one connection may subscribe to; a subscribe past it is answered with an error (Centrifugo's default is 128). */
    maxSubscriptionsPerConnection: z.number().int().min(1).default(128),
    /** Subscriptions one replica holds across its connections (~330 B of heap each); past it, subscribe is answered with an error. */
    maxSubscriptionsPerReplica: z.number().int().min(1).default(500_000),
    /**
     * With auth.mode `none`: whether clients may publish over the WebSocket. Off, anyone who
     * reaches the proxy could forge notifications to everyone's subscribers; backends publish
     * through the publish API (apiKeyFile) instead. With `jwt` the grants decide and this is not read.
     */
    clientPublish: z.boolean().default(false),
    /** Allowed Origin header values; empty allows any (non-browser clients send none). */
    allowedOrigins: z.array(z.string().url()).default([]),
    /** On SIGTERM, closes with 1001 are spread over this window to avoid a reconnect stampede. */
    drainWindowMs: z.number().int().min(0).default(5_000),
    /** The process exits by this deadline after SIGTERM, whatever is left. */
    drainDeadlineMs: positiveMs.default(15_000),
    /** Log level of the JSON logs. */
    logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
    /**
     * The publish API for backends (POST /api/publish) takes this bearer key, read from a file
     * (a mounted secret) so it stays out of code and state. Without one the API answers 404.
     */
    apiKeyFile: z.string().min(1).optional(),
  })
  .strict();

export const balancingSchema = z
  .object({
    /**
     * least_conn suits long-lived sockets best: round robin ignores how many are already open.
     * ip_hash keys on the first three octets of an IPv4 address.
     */
    strategy: z.enum(STRATEGIES).default('least_conn'),
    /** Key for the hash strategy, an nginx variable expression such as $arg_client or $cookie_sid. */
    hashKey: z
      .string()
      .regex(/\$[a-z_][a-z0-9_]*/, 'must contain an nginx variable such as $arg_client')
      .optional(),
    /** Ketama consistent hashing for the hash strategy: scaling moves few keys. */
    consistent: z.boolean().default(true),
    /** Passive health: a replica failing this many times within failTimeoutMs is skipped for that long. */
    maxFails: z.number().int().min(0).default(3),
    failTimeoutMs: positiveMs.default(10_000),
  })
  .strict();

export const limitsSchema = z
  .object({
    /** limit_conn per client address; 0 disables. */
    connectionsPerAddress: z.number().int().min(0).default(20_000),
    /** limit_req on handshakes per client address, per second; 0 disables. */
    handshakesPerSecond: z.number().int().min(0).default(2_000),
    /** Handshakes above the rate admitted at once before refusing. */
    handshakeBurst: z.number().int().min(0).default(2_000),
    /**
     * Publish API requests (proxy.publishApi) one client address may have open at once; 0
     * disables. A backend needs a few; a client trickling bodies to hold sockets is cut here.
     */
    publishRequestsPerAddress: z.number().int().min(0).default(64),
  })
  .strict();

/**
 * What a reload does to the WebSockets the old nginx workers hold. nginx stamps every proxied
 * handshake with the worker that carries it; after a reload the replicas are told which workers
 * are current, keep the connections of retired workers open for a while, then close them with
 * 1001 spread over shedWindowMs, finishing marginMs before proxy.shutdownTimeoutMs would cut them.
 */
export const reloadSchema = z
  .object({
    /** Retired workers' connections get their 1001 spread over this window (a reconnect wave, not a storm). */
    shedWindowMs: positiveMs.default(30_000),
    /** Slack between the last planned 1001 and nginx's deadline (announcement delay, close handshakes). */
    marginMs: positiveMs.default(5_000),
    /**
     * Reloads whose retired workers may still hold connections. A further reload sheds the oldest
     * at once (over the window), so old workers never pile up however often nginx reloads.
     */
    maxStaleGenerations: z.number().int().min(0).max(16).default(2),
  })
  .strict();

/**
 * An optional rebalance after the fleet grows: least_conn only steers new connections. Once the
 * reload's wave has moved the retired workers' connections (the deploy waits for it), each round
 * sheds (1001) part of the busiest replicas' surplus over the window; the clients reconnect
 * through nginx to the emptier ones.
 */
export const rebalanceSchema = z
  .object({
    /** Off by default: a rebalance reconnects clients that were doing fine. */
    enabled: z.boolean().default(false),
    /** The most of one replica's connections one round may shed. */
    maxFraction: z.number().gt(0).max(1).default(0.25),
    /** Each round's 1001s are spread over this window. */
    windowMs: positiveMs.default(5_000),
    /** Even enough: every replica within this fraction of the mean. */
    tolerance: z.number().gt(0).max(1).default(0.1),
    maxRounds: z.number().int().min(1).max(50).default(8),
  })
  .strict();

/** What the page follows unless proxy.page.topics says otherwise. */
const PAGE_TOPICS = ['news', 'user.{sub}.inbox'] as const;

export const proxySchema = z
  .object({
    containerName: containerName.default('ws-nginx'),
    httpsPort: port.default(443),
    httpPort: port.default(80),
    /** The nginx release the config targets; directives only some releases know are gated on it. */
    nginxVersion: z
      .string()
      .regex(/^\d+\.\d+(\.\d+)?$/, 'must be a version such as 1.30 or 1.22.1')
      .default('1.30'),
    /** Seed: 90 s, "a margin so a packet delayed 5–10 s does not get the connection cut with 1006". */
    readTimeoutMs: positiveMs.default(90_000),
    sendTimeoutMs: positiveMs.default(90_000),
    connectTimeoutMs: positiveMs.default(5_000),
    /** The least the read/send timeouts must exceed the server ping interval by. */
    timeoutMarginMs: z.number().int().min(0).default(10_000),
    balancing: balancingSchema.default(balancingSchema.parse({})),
    limits: limitsSchema.default(limitsSchema.parse({})),
    /** Concurrent client connections the proxy is sized for. */
    targetConnections: z.number().int().positive().default(10_000),
    /**
     * The TLS listener's accept queue (nginx \`listen ... backlog=\`; nginx's own default is 511):
     * handshakes arriving in a burst wait here rather than being dropped and retried after a
     * second. The kernel caps it at net.core.somaxconn: the stack sets that sysctl on the proxy
     * container, and the local runner refuses a backlog above this machine's.
     */
    listenBacklog: z.number().int().min(16).max(65_535).default(4096),
    /**
     * nginx's `ssl_buffer_size`: the buffer it keeps per TLS connection for what it sends itself
     * (the 101 and API answers). Relayed WebSocket frames never go through it (they are written
     * per relay buffer), yet nginx's 16k default is held for the connection's whole life: the
     * largest single part of a held WSS connection (docs/benchmarks/ceiling.md, "nginx settings").
     */
    tlsBufferBytes: z.number().int().min(512).max(16_384).default(1024),
    /**
     * nginx's `proxy_buffer_size` on the WebSocket path: a relay buffer each way for the
     * connection's life, and the largest piece of a frame written as one TLS record. nginx's
     * default (a page) keeps a typical notification in one record; 1k saves 4 KB a connection
     * and splits larger frames into more records: 2.6× nginx's CPU per delivery for 9–19 KB
     * notifications (docs/benchmarks/ceiling.md, "The relay buffer's CPU per delivery").
     */
    relayBufferBytes: z.number().int().min(1024).max(65_536).default(4096),
    /** Derived from targetConnections when absent: the fewest workers (at least 2) whose share fits maxOpenFiles. */
    workerProcesses: z.number().int().min(1).max(64).optional(),
    /** Derived from targetConnections when absent (2 descriptors per proxied connection). */
    workerConnections: z.number().int().min(64).optional(),
    /** The per-process open-file ceiling where nginx runs. */
    maxOpenFiles: z.number().int().min(1024).default(PROCESS_OPEN_FILES),
    /**
     * nginx's worker_shutdown_timeout: after a reload, old workers holding WebSockets are killed
     * after this long, cutting whatever they still hold (1006). The replicas close those
     * connections with 1001 before it (see reload), so this is a last resort, never reached.
     */
    shutdownTimeoutMs: positiveMs.default(300_000),
    reload: reloadSchema.default(reloadSchema.parse({})),
    rebalance: rebalanceSchema.default(rebalanceSchema.parse({})),
    /** Several proxies behind one virtual address (keepalived VRRP): app/src/topology/ha.ts. */
    ha: haSchema.default(haSchema.parse({})),
    /**
     * Route the publish API (POST /api/publish) through the public TLS port to any replica. Off:
     * backends reach the replicas on the service network only. Needs server.apiKeyFile.
     */
    publishApi: z.boolean().default(false),
    /**
     * The live notification page at / on the TLS port (web/page): the centrifuge SDK bundled, the
     * topics it follows (`{sub}`: the signed-in user's, skipped when anonymous), and with
     * `auth.mode: jwt` a sign-in with PKCE as the public client `clientId` at auth.issuer.
     */
    page: z
      .object({
        enabled: z.boolean().default(true),
        topics: z.array(z.string().min(1)).default([...PAGE_TOPICS]),
        clientId: z.string().min(1).default(PAGE_CLIENT),
      })
      .strict()
      .default({ enabled: true, topics: [...PAGE_TOPICS], clientId: PAGE_CLIENT }),
    /** Addresses allowed to read stub_status (loopback always is). */
    statusAllow: z.array(z.string()).default(['172.16.0.0/12', '10.0.0.0/8', '192.168.0.0/16']),
  })
  .strict()
  .transform((p) => ({ ...p, workerProcesses: p.workerProcesses ?? workerProcessesFor(p.targetConnections, p.maxOpenFiles) }));

export const tlsSchema = z
  .object({
    /** Directory (relative to the project root, or absolute) holding the certificate files. */
    dir: z.string().min(1).default('certs/generated'),
    caCert: z.string().min(1).default('ca.crt'),
    serverCert: z.string().min(1).default('server.crt'),
    serverKey: z.string().min(1).default('server.key'),
    /**
     * TLS session ticket key, shared by the HA pair's proxies (80 random bytes, made with the
     * certificates): a client reconnecting after a failover resumes its session on the other
     * proxy instead of a full handshake. Rotate it with the certificates (`npm run certs -- --force`).
     */
    sessionTicketKey: z.string().min(1).default('ticket.key'),
    /**
     * The replicas' control endpoints' secret (32 random bytes, hex), made with the certificates:
     * every reload, rebalance and follower sends it as a bearer key. Each target hands it to the
     * replicas as a file (CONTROL_KEY_ENV): bind-mounted, a docker_secret, or the file itself.
     */
    controlKey: z.string().min(1).default('control.key'),
  })
  .strict();

export const imagesSchema = z
  .object({
    app: z.string().min(1).default('ws-notifications/app:local'),
    proxy: z.string().min(1).default('ws-notifications/nginx:local'),
    /** Base images (build arguments); the offline script builds local stand-ins. */
    nodeBase: z.string().min(1).default('node:20-bookworm-slim'),
    nginxBase: z.string().min(1).default('nginx:1.30'),
    /** Monitoring images, pulled (the offline script builds stand-ins from Debian's packages). */
    prometheus: z.string().min(1).default('prom/prometheus:v2.55.1'),
    nginxExporter: z.string().min(1).default('nginx/nginx-prometheus-exporter:1.3.0'),
    /** Grafana is not packaged by Debian: there is no offline stand-in. */
    grafana: z.string().min(1).default('grafana/grafana:11.3.0'),
    /** The broker, pulled (the offline script builds a stand-in from Debian's nats-server). Alpine: it has wget for the health check. */
    nats: z.string().min(1).default('nats:2.10-alpine'),
    /** Keep the built images on destroy (pulled ones are always kept). */
    keep: z.boolean().default(false),
  })
  .strict();

/** Alert thresholds; the rules file is rendered from these (see stacks/monitoring/alert-rules.ts). */
export const alertsSchema = z
  .object({
    /** 1006 closes per second seen by the servers (proxy timeouts, dropped TCP) over 5 minutes. */
    abnormalClosesPerSecond: z.number().positive().default(1),
    /** Handshakes refused per second by the servers over 5 minutes (cap, origin, draining, compression). */
    handshakeRejectionsPerSecond: z.number().positive().default(5),
    /** Oversize messages (closed with 1009) per second over 5 minutes: a client probing the limit. */
    oversizeMessagesPerSecond: z.number().positive().default(0.1),
    /** Slow-consumer closes per second over 5 minutes. */
    slowConsumerClosesPerSecond: z.number().positive().default(0.5),
    /** Tokens refused (or connections closed for auth) per second, by reason, over 5 minutes: forged or stale tokens, a provider problem. */
    authFailuresPerSecond: z.number().positive().default(1),
    /** Publications a replica may be behind the broker's stream before it is warned about. */
    brokerLagMessages: z.number().int().positive().default(1_000),
    /** Share of proxy.targetConnections at which Nginx is warned to be near capacity. */
    proxyCapacityRatio: z.number().gt(0).max(1).default(0.9),
    /** How long a replica may be down (or a condition hold) before its alert fires. */
    forMs: z.number().int().min(0).default(60_000),
  })
  .strict();

export const monitoringSchema = z
  .object({
    /** Prometheus, the nginx exporter and Grafana; off leaves the stack as it was without them. */
    enabled: z.boolean().default(true),
    /** Grafana can be left out (Prometheus alone); the offline base images turn it off. */
    grafana: z.boolean().default(true),
    scrapeIntervalMs: z.number().int().min(1_000).max(300_000).default(5_000),
    /** Rule evaluation interval. */
    evaluationIntervalMs: z.number().int().min(1_000).max(300_000).default(5_000),
    /** How long Prometheus keeps samples (a Prometheus duration such as 15d). */
    retention: z
      .string()
      .regex(/^\d+(ms|s|m|h|d|w|y)$/, 'must be a Prometheus duration such as 15d or 12h')
      .default('7d'),
    /** Host ports; published on 127.0.0.1 only: the monitoring UIs are not for the internet. */
    prometheusPort: port.default(9090),
    grafanaPort: port.default(3000),
    /** The exporter's port inside the network. */
    exporterPort: port.default(9113),
    /** Where the load client serves /metrics while it runs. */
    loadMetricsPort: port.default(9464),
    prometheusContainerName: containerName.default('ws-prometheus'),
    exporterContainerName: containerName.default('ws-nginx-exporter'),
    grafanaContainerName: containerName.default('ws-grafana'),
    alerts: alertsSchema.default(alertsSchema.parse({})),
  })
  .strict();

/** The broker's container on the Docker stack, and so the host name in the default URL. */
export const BROKER_CONTAINER = 'ws-nats';
/** The port nats-server takes clients on (NATS's own default), in the container and in the default URL. */
export const BROKER_CLIENT_PORT = 4222;

/**
 * The broker every replica shares (NATS JetStream): a publication goes into one stream, every
 * replica consumes it and delivers to its own subscribers, so a notification reaches every
 * subscriber of its topic whatever replica each landed on.
 */
export const brokerSchema = z
  .object({
    /** Off: fan-out stays per replica (a publication reaches only the publishing replica's subscribers). */
    enabled: z.boolean().default(true),
    /** Server URLs the replicas connect to: the stack's own broker container by default (the local topology uses its own nats-server). */
    urls: z
      .array(z.string().regex(/^nats:\/\/[^\s/]+$/, 'must be nats://host:port'))
      .min(1)
      .default([`nats://${BROKER_CONTAINER}:${BROKER_CLIENT_PORT}`]),
    /** Host port (127.0.0.1 only) of the broker container's monitoring endpoint (/healthz, /varz, /jsz). */
    monitoringPort: port.default(8222),
    /** The JetStream stream holding every topic's history. */
    stream: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/)
      .default('WS_NOTIFICATIONS'),
    /** Publications of topic T go to subject `<prefix>.T`. */
    subjectPrefix: z
      .string()
      .regex(/^[a-z][a-z0-9_-]{0,31}$/)
      .default('notify'),
    /** History kept per topic: this many messages (max_msgs_per_subject) ... */
    historyPerTopic: z.number().int().min(1).max(1_000_000).default(1_000),
    /** ... and none older than this (max_age). */
    historyMaxAgeMs: positiveMs.default(3_600_000),
    /** A repeated publication id within this window is stored once (duplicate_window). */
    dedupeWindowMs: positiveMs.default(120_000),
    storage: z.enum(['file', 'memory']).default('file'),
    /**
     * What each replica keeps in memory of its latest deliveries, to answer recoveries without a
     * round trip to the broker: at most this many bytes of stored JSON, oldest dropped first (a
     * recovery older than that asks the broker). Parsed, it takes about twice this much heap.
     */
    recentBytes: z.number().int().min(0).max(1_073_741_824).default(16_777_216),
    /**
     * Copies of the stream JetStream keeps, each on another server: 1 on the engine target (one
     * nats-server), SWARM_STREAM_REPLICAS on the swarm target (its cluster) unless set.
     */
    streamReplicas: z.number().int().min(1).max(5).optional(),
  })
  .strict();

export const topologySchema = z
  .object({
    /** Stack and resource name prefix. */
    name: z
      .string()
      .regex(/^[a-z][a-z0-9-]{1,40}$/)
      .default('ws-notifications'),
    replicas: z
      .number({ error: 'must be a whole number from 1 to 64' })
      .int('must be a whole number from 1 to 64')
      .min(1, 'must be at least 1 (a fleet needs a replica)')
      .max(64, 'must be at most 64'),
    network: z
      .object({
        name: z.string().min(1).default('ws-notifications'),
        /** The network's subnet (a.b.c.d/n); absent, Docker picks one. Required with proxy.ha. */
        subnet: cidrText.optional(),
        /** Where Docker hands out container addresses, inside the subnet; the rest stays free (proxy.ha's address). */
        ipRange: cidrText.optional(),
      })
      .strict()
      .default({ name: 'ws-notifications' }),
    server: serverSchema.default(serverSchema.parse({})),
    proxy: proxySchema.default(proxySchema.parse({})),
    tls: tlsSchema.default(tlsSchema.parse({})),
    images: imagesSchema.default(imagesSchema.parse({})),
    load: loadProfileSchema.default(loadProfileSchema.parse({})),
    monitoring: monitoringSchema.default(monitoringSchema.parse({})),
    broker: brokerSchema.default(brokerSchema.parse({})),
    /** Who may connect, subscribe and publish (app/src/topology/auth.ts). */
    // Absent: jwt against the development IdP (secure by default; auth.ts withDevelopmentIdp).
    auth: topologyAuthSchema.default(() => topologyAuthSchema.parse({})),
    /** Containers on one Docker engine, or services on a Docker Swarm (app/src/topology/swarm.ts). */
    target: z.enum(TARGETS).default('engine'),
    swarm: swarmSchema.default(swarmSchema.parse({})),
  })
  .strict()
  .superRefine((t, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const { server, proxy, load } = t;
    const ha =
      t.target === 'swarm'
        ? haProblems(proxy.ha, { subnet: t.swarm.nodeSubnet }, { subnet: ['swarm', 'nodeSubnet'] })
        : haProblems(proxy.ha, t.network);
    for (const [path, message] of ha) issue(path, message);
    if (t.network.ipRange && t.network.subnet) {
      const [subnet, range] = [parseCidr(t.network.subnet)!, parseCidr(t.network.ipRange)!];
      if (range.prefix < subnet.prefix || !cidrContains(subnet, range.base))
        issue(['network', 'ipRange'], `must lie inside network.subnet ${t.network.subnet}`);
    }
    if (t.network.ipRange && !t.network.subnet) issue(['network', 'ipRange'], 'needs network.subnet');
    if (proxy.page.enabled && !server.centrifuge)
      issue(
        ['proxy', 'page', 'enabled'],
        'the page speaks the Centrifugo protocol, which server.centrifuge turns off: turn either both on or the page off',
      );
    if (proxy.publishApi && server.apiKeyFile === undefined) {
      issue(['proxy', 'publishApi'], 'routes the publish API, which is off without server.apiKeyFile: set the key file too');
    }
    if (load.publishApi && !proxy.publishApi)
      issue(
        ['load', 'publishApi'],
        'the load job posts to the publish API through the proxy: set proxy.publishApi (and server.apiKeyFile) too',
      );
    for (const [path, message] of clientPublishProblems(t)) issue(path, message);

    if (server.pongTimeoutMs <= server.pingIntervalMs) {
      issue(
        ['server', 'pongTimeoutMs'],
        `must exceed server.pingIntervalMs (${server.pingIntervalMs}) or every peer is dropped before it can answer`,
      );
    }
    const leastTimeout = server.pingIntervalMs + proxy.timeoutMarginMs;
    if (proxy.readTimeoutMs < leastTimeout) {
      issue(
        ['proxy', 'readTimeoutMs'],
        `must be at least server.pingIntervalMs + proxy.timeoutMarginMs = ${leastTimeout} ms, or Nginx cuts idle WebSockets (1006) between pings`,
      );
    }
    if (proxy.sendTimeoutMs < leastTimeout) {
      issue(
        ['proxy', 'sendTimeoutMs'],
        `must be at least server.pingIntervalMs + proxy.timeoutMarginMs = ${leastTimeout} ms (pongs are the only upstream writes of an idle client)`,
      );
    }
    if (server.writeTimeoutMs >= server.pongTimeoutMs) {
      issue(
        ['server', 'writeTimeoutMs'],
        `must be below server.pongTimeoutMs (${server.pongTimeoutMs}) so a stuck write is noticed before the heartbeat gives up`,
      );
    }
    if (server.drainWindowMs >= server.drainDeadlineMs) {
      issue(
        ['server', 'drainWindowMs'],
        `must be below server.drainDeadlineMs (${server.drainDeadlineMs}) so every client gets its 1001 before the exit`,
      );
    }
    if (proxy.balancing.strategy === 'hash' && !proxy.balancing.hashKey) {
      issue(['proxy', 'balancing', 'hashKey'], 'is required when the strategy is hash (for example $arg_client)');
    }
    if (proxy.balancing.strategy !== 'hash' && proxy.balancing.hashKey) {
      issue(['proxy', 'balancing', 'hashKey'], `only applies to the hash strategy, not ${proxy.balancing.strategy}`);
    }
    if (proxy.shutdownTimeoutMs < proxy.reload.shedWindowMs + proxy.reload.marginMs) {
      issue(
        ['proxy', 'shutdownTimeoutMs'],
        `must be at least proxy.reload.shedWindowMs + proxy.reload.marginMs = ${proxy.reload.shedWindowMs + proxy.reload.marginMs} ` +
          `ms, or nginx cuts retired workers' WebSockets (1006) before the replicas have closed them`,
      );
    }
    if (proxy.httpPort === proxy.httpsPort) {
      issue(['proxy', 'httpPort'], 'must differ from proxy.httpsPort');
    }

    // Capacity: every proxied WebSocket holds two worker connections (client side and upstream side).
    const needed = 2 * proxy.targetConnections;
    const workerConnections = proxy.workerConnections ?? derivedWorkerConnections(proxy);
    if (workerConnections * proxy.workerProcesses < needed + NGINX_FD_SLACK * proxy.workerProcesses) {
      issue(
        ['proxy', 'workerConnections'],
        `${workerConnections} × ${proxy.workerProcesses} workers must cover 2 × proxy.targetConnections (${needed}) plus ${NGINX_FD_SLACK} slack per worker`,
      );
    }
    if (workerConnections + NGINX_FD_SLACK > proxy.maxOpenFiles) {
      issue(
        ['proxy', 'workerProcesses'],
        `${proxy.workerProcesses} workers need ${workerConnections} connections each, above proxy.maxOpenFiles (${proxy.maxOpenFiles}) minus slack: raise workerProcesses or maxOpenFiles`,
      );
    }

    // The load job must fit what the proxy and the servers admit.
    const peak = peakConnections(load);
    if (peak > proxy.targetConnections) {
      issue(['load', 'stages'], `peak of ${peak} connections exceeds proxy.targetConnections (${proxy.targetConnections})`);
    }
    if (t.replicas >= 1 && peak > server.maxConnections * t.replicas) {
      issue(
        ['load', 'stages'],
        `peak of ${peak} connections exceeds server.maxConnections × replicas (${server.maxConnections * t.replicas})`,
      );
    }
    const addresses = Math.max(1, load.sourceAddresses.length);
    if (proxy.limits.connectionsPerAddress > 0 && peak > proxy.limits.connectionsPerAddress * addresses) {
      issue(
        ['load', 'stages'],
        `peak of ${peak} connections from ${addresses} source address(es) exceeds proxy.limits.connectionsPerAddress (${proxy.limits.connectionsPerAddress}) per address`,
      );
    }
    const rate = peakRampRate(load);
    if (proxy.limits.handshakesPerSecond > 0 && rate > proxy.limits.handshakesPerSecond * addresses) {
      issue(
        ['load', 'stages'],
        `ramp rate of ${rate}/s from ${addresses} source address(es) exceeds proxy.limits.handshakesPerSecond (${proxy.limits.handshakesPerSecond}) per address`,
      );
    }
    if (largestPayloadBytes(load.payload) > server.maxMessageBytes - 256) {
      issue(['load', 'payload'], `payloads must stay below server.maxMessageBytes (${server.maxMessageBytes}) minus 256 bytes of envelope`);
    }
    if (server.compression === 'required' && !load.compression) {
      issue(['load', 'compression'], 'must be true when server.compression is required, or every handshake is refused');
    }
    if (server.deltaTopics.length > 0 && !t.broker.enabled) {
      issue(['server', 'deltaTopics'], 'needs broker.enabled: a delta goes only to a subscriber positioned on the previous offset');
    }
    if (t.broker.enabled && t.broker.dedupeWindowMs > t.broker.historyMaxAgeMs) {
      issue(
        ['broker', 'dedupeWindowMs'],
        `must not exceed broker.historyMaxAgeMs (${t.broker.historyMaxAgeMs}): JetStream refuses a duplicate window longer than the stream's max age`,
      );
    }
    if (t.target === 'swarm') {
      if (proxy.ha.enabled && proxy.ha.virtualAddress && t.swarm.publicNames.includes(proxy.ha.virtualAddress)) {
        issue(
          ['proxy', 'ha', 'virtualAddress'],
          `${proxy.ha.virtualAddress} is one of swarm.publicNames (a node's own address): the pair needs an address no node has`,
        );
      }
      if (t.network.subnet || t.network.ipRange)
        issue(['network', 'subnet'], "is not used on the swarm target: Swarm allocates the overlay's addresses");
      if (usesDevelopmentIdp(t.auth))
        issue(['auth', 'issuer'], 'the swarm target runs no development IdP: name your provider (auth.issuer or auth.jwksUri)');
      // The engine target mounts the key file; the swarm target has no secret for it yet.
      if (server.apiKeyFile !== undefined)
        issue(
          ['server', 'apiKeyFile'],
          'the swarm target does not pass the key file to its services yet: the publish API runs on the engine target',
        );
      if (load.publishApi) issue(['load', 'publishApi'], 'needs server.apiKeyFile, which the swarm target does not pass yet');
    }
    const servers = t.target === 'swarm' ? t.swarm.brokerNodes : 1;
    if (t.broker.enabled && streamReplicas(t) > servers) {
      issue(
        ['broker', 'streamReplicas'],
        `${streamReplicas(t)} copies need as many nats-servers; the ${t.target} target runs ${servers}${t.target === 'swarm' ? ' (swarm.brokerNodes)' : ''}`,
      );
    }
    if (server.compression === 'off' && load.compression) {
      issue(['load', 'compression'], 'cannot be true when server.compression is off');
    }

    const { monitoring } = t;
    // Host ports the stack publishes: one owner each.
    const published: [string, number][] = [
      ['proxy.httpsPort', proxy.httpsPort],
      ['proxy.httpPort', proxy.httpPort],
    ];
    if (monitoring.enabled) published.push(['monitoring.prometheusPort', monitoring.prometheusPort]);
    if (monitoring.enabled && monitoring.grafana) published.push(['monitoring.grafanaPort', monitoring.grafanaPort]);
    if (t.broker.enabled) published.push(['broker.monitoringPort', t.broker.monitoringPort]);
    for (const [i, [field, value]] of published.entries()) {
      const clash = published.slice(0, i).find(([, v]) => v === value);
      if (clash) issue(field.split('.'), `${value} is already used by ${clash[0]}`);
    }
    if (monitoring.enabled) {
      if (monitoring.evaluationIntervalMs < monitoring.scrapeIntervalMs) {
        issue(
          ['monitoring', 'evaluationIntervalMs'],
          `must be at least monitoring.scrapeIntervalMs (${monitoring.scrapeIntervalMs}): rules cannot see samples faster than they are scraped`,
        );
      }
      if (monitoring.loadMetricsPort === server.port) {
        issue(['monitoring', 'loadMetricsPort'], `must differ from server.port (${server.port})`);
      }
      const names = [
        proxy.containerName,
        monitoring.prometheusContainerName,
        monitoring.exporterContainerName,
        monitoring.grafanaContainerName,
      ];
      if (new Set(names).size !== names.length) {
        issue(['monitoring'], `container names must be distinct: ${names.join(', ')}`);
      }
    }
  });

/** Copies of the broker's stream: as set, or the target's default (see brokerSchema.streamReplicas). */
export function streamReplicas(t: {
  target: Target;
  broker: Pick<BrokerConfig, 'streamReplicas'>;
  swarm: Pick<SwarmConfig, 'brokerNodes'>;
}): number {
  return t.broker.streamReplicas ?? (t.target === 'swarm' ? Math.min(SWARM_STREAM_REPLICAS, t.swarm.brokerNodes) : 1);
}

/** What a supervisor adds to the drain deadline before it kills: the process exits by itself well within it. */
export const STOP_MARGIN_MS = 5_000;

/**
 * How long a supervisor (Docker's stop timeout, the local runner) waits after SIGTERM/SIGQUIT
 * before it kills: the replicas' drain deadline plus a margin. nginx gets the same: stopping it
 * ends its WebSockets however long it waits, while the replicas drain theirs with 1001.
 */
export function stopGraceMs(server: Pick<ServerConfig, 'drainDeadlineMs'>): number {
  return server.drainDeadlineMs + STOP_MARGIN_MS;
}

/** A replica's own hard exit after SIGTERM, whatever hangs: past its deadline, before its supervisor's kill. */
export function selfExitMs(server: Pick<ServerConfig, 'drainDeadlineMs'>): number {
  return server.drainDeadlineMs + STOP_MARGIN_MS / 2;
}

/**
 * When the replicas start closing a retired worker's connections, counted from the reload:
 * late enough that the clients keep them as long as possible, early enough that the last 1001
 * goes out proxy.reload.marginMs before nginx's worker_shutdown_timeout.
 */
export function reloadShedDelayMs(proxy: Pick<ProxyConfig, 'shutdownTimeoutMs' | 'reload'>): number {
  return Math.max(0, proxy.shutdownTimeoutMs - proxy.reload.shedWindowMs - proxy.reload.marginMs);
}

/**
 * nginx's own client-side timeouts, derived from the server's write deadline:
 * - send_timeout: once a replica drops a slow consumer, nginx still holds the client side
 *   with unsent data until this passes; it should give up on a stalled write no later than
 *   the replica does.
 * - client_header_timeout: the TLS handshake and the upgrade request of a peer that stalls
 *   (slowloris) are cut just as soon.
 */
export function nginxClientTimeouts(server: Pick<ServerConfig, 'writeTimeoutMs'>): {
  sendTimeoutMs: number;
  clientHeaderTimeoutMs: number;
} {
  return { sendTimeoutMs: server.writeTimeoutMs, clientHeaderTimeoutMs: server.writeTimeoutMs };
}

/** worker_connections when not given: an even share of two descriptors per target connection, with headroom. */
export function derivedWorkerConnections(proxy: Pick<ProxyConfig, 'targetConnections' | 'workerProcesses'>): number {
  const share = Math.ceil(((2 * proxy.targetConnections) / proxy.workerProcesses) * NGINX_WORKER_HEADROOM);
  return share + NGINX_FD_SLACK;
}

/** The fewest nginx workers (at least 2) whose derived worker_connections fit under maxOpenFiles. */
export function workerProcessesFor(targetConnections: number, maxOpenFiles: number): number {
  let workers = 2;
  while (derivedWorkerConnections({ targetConnections, workerProcesses: workers }) + NGINX_FD_SLACK > maxOpenFiles) workers++;
  return workers;
}

export type Topology = z.infer<typeof topologySchema>;
export type TopologyInput = z.input<typeof topologySchema>;
export type ServerConfig = z.infer<typeof serverSchema>;
export type ProxyConfig = z.infer<typeof proxySchema>;
export type TlsConfig = z.infer<typeof tlsSchema>;
export type ImagesConfig = z.infer<typeof imagesSchema>;
export type MonitoringConfig = z.infer<typeof monitoringSchema>;
export type AlertsConfig = z.infer<typeof alertsSchema>;
export type ReloadConfig = z.infer<typeof reloadSchema>;
export type BrokerConfig = z.infer<typeof brokerSchema>;
export type RebalanceConfig = z.infer<typeof rebalanceSchema>;

/**
 * server.clientPublish means something only with auth off, and the load job's publications need
 * it there unless they go through the publish API: over the WebSocket, auth off refuses them without it.
 */
function clientPublishProblems(t: Pick<Topology, 'auth' | 'server' | 'load'>): [string[], string][] {
  if (t.auth.mode === 'jwt' && t.server.clientPublish)
    return [[['server', 'clientPublish'], 'is read only with auth.mode none: with jwt, the grants decide who may publish']];
  const loadPublishes = t.load.publishRate > 0 && t.load.senderFraction > 0 && t.load.topics > 0 && !t.load.publishApi;
  if (t.auth.mode === 'none' && !t.server.clientPublish && loadPublishes)
    return [
      [
        ['server', 'clientPublish'],
        'the load job publishes over the WebSocket (load.publishRate), which auth.mode none refuses unless server.clientPublish is true: set it, publish through the API (load.publishApi), set load.publishRate to 0, or use auth.mode jwt',
      ],
    ];
  return [];
}
