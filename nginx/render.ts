import { DEV_IDP, derivedWorkerConnections, nginxClientTimeouts, NGINX_FD_SLACK, type Topology } from '../app/src/topology';
import { CENTRIFUGE_PATH } from '../app/src/shared/centrifuge';
import { pageConfig } from '../web/page-config';
import { PROXY_WORKER_HEADER } from '../app/src/shared/control';
import { PUBLISH_API_PATH, publishBodyLimit, REQUEST_TIMEOUT_MS } from '../app/src/shared/protocol';
import { nginxDuration } from '../app/src/shared/duration';
import { HTTP11_DEFAULT_SINCE, versionAtLeast } from './version';

/** Where the rendered config runs: paths and addresses differ between the container and loopback. */
export interface NginxRenderOptions {
  /** One `host:port` per replica, in replica order (or one name that resolves to every task: see tasks). */
  readonly upstreams: readonly string[];
  /**
   * The swarm target: `upstreams` is `tasks.<service>:port`, which nginx resolves to one peer per
   * task each time it loads the config (nginx/follow-tasks.ts reloads it when the tasks change).
   */
  readonly tasks?: string;
  /** Certificate and key as nginx sees them (inside the container, or absolute local paths). */
  readonly certFile: string;
  readonly keyFile: string;
  /** Address to bind (local runs bind loopback); all addresses when absent. */
  readonly listenAddress?: string;
  /** Ports to bind; the topology's public ports when absent. */
  readonly httpsPort?: number;
  readonly httpPort?: number;
  /** The port clients reach HTTPS on, for the port-80 redirect; httpsPort when absent. */
  readonly publicHttpsPort?: number;
  /**
   * A writable directory for the pid file, logs and temp files (local runs); when absent
   * the image's defaults are used and logs go to stdout/stderr.
   */
  readonly runtimeDir?: string;
  /** The pid file; inside runtimeDir for local runs. */
  readonly pidFile?: string;
  /**
   * A session ticket key file shared by several proxies (the HA pair): TLS session tickets on,
   * so a client resumes on whichever proxy it reaches. Absent: tickets off (sessions cached per proxy).
   */
  readonly sessionTicketKeyFile?: string;
  /** The HA pair: keepalived's metric file (keepalived/render.ts), served at VRRP_METRICS_PATH on the status port. */
  readonly vrrpMetricFile?: string;
  /** The built notification page (web/build.ts) as nginx sees it: served at / when proxy.page is on. */
  readonly pageDir?: string;
}

/** Where a proxy of the HA pair serves its VRRP state metric (Prometheus scrapes each proxy). */
export const VRRP_METRICS_PATH = '/vrrp_metrics';

/** nginx's error log in a local run's runtime directory. */
export function nginxErrorLog(runtimeDir: string): string {
  return `${runtimeDir}/error.log`;
}

/**
 * The ports nginx binds where it has a network namespace of its own (a container, an HA pair's
 * namespace); the topology's ports are the ones published on the host.
 */
export const PROXY_PORTS = { https: 443, http: 80 } as const;

/** Where stub_status answers (the exporter and the tests read it). */
export const NGINX_STATUS_PATH = '/nginx_status';

/** Renders nginx.conf from the topology. Pure: same input, same text. */
export function renderNginxConf(topology: Topology, options: NginxRenderOptions): string {
  if (options.upstreams.length === 0) throw new Error('renderNginxConf: at least one upstream is required');
  const { proxy, server } = topology;
  const { balancing, limits } = proxy;
  const workerConnections = proxy.workerConnections ?? derivedWorkerConnections(proxy);
  const httpsPort = options.httpsPort ?? proxy.httpsPort;
  const httpPort = options.httpPort ?? proxy.httpPort;
  const publicHttps = options.publicHttpsPort ?? httpsPort;
  const bind = (port: number) => (options.listenAddress ? `${options.listenAddress}:${port}` : `${port}`);
  const rt = options.runtimeDir;
  const errorLog = rt ? nginxErrorLog(rt) : '/dev/stderr';
  const accessLog = rt ? `${rt}/access.log` : '/dev/stdout';

  const balancingLine = {
    round_robin: '# round robin (the default): no directive',
    least_conn: 'least_conn;',
    ip_hash: 'ip_hash;  # keys on the first three octets of an IPv4 client address',
    hash: `hash ${balancing.hashKey}${balancing.consistent ? ' consistent' : ''};`,
  }[balancing.strategy];

  const serverLines = options.upstreams.map(
    (u) => `        server ${u} max_fails=${balancing.maxFails} fail_timeout=${nginxDuration(balancing.failTimeoutMs)};`,
  );

  const http11 = versionAtLeast(proxy.nginxVersion, HTTP11_DEFAULT_SINCE)
    ? `# proxy_http_version 1.1 is the default since nginx ${HTTP11_DEFAULT_SINCE}`
    : 'proxy_http_version 1.1;  # WebSocket upgrade needs HTTP/1.1 to the upstream';

  const limitLines = [
    limits.connectionsPerAddress > 0
      ? `limit_conn ws_conn_per_addr ${limits.connectionsPerAddress};`
      : '# limit_conn disabled (proxy.limits.connectionsPerAddress = 0)',
    limits.handshakesPerSecond > 0
      ? `limit_req zone=ws_handshakes burst=${limits.handshakeBurst} nodelay;`
      : '# limit_req disabled (proxy.limits.handshakesPerSecond = 0)',
  ];

  // The service network's own subnet too, when the topology fixes one (the HA pair's).
  const statusAllow = ['127.0.0.1', ...proxy.statusAllow, ...(topology.network.subnet ? [topology.network.subnet] : [])]
    .map((a) => `allow ${a};`)
    .join(' ');
  const clientTimeouts = nginxClientTimeouts(server);

  const webSocketBody = `            proxy_pass http://ws_servers;
            ${http11}
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            # Which worker carries this WebSocket: after a reload the replicas are told the new
            # workers and close the retired workers' connections with 1001 before
            # worker_shutdown_timeout would cut them (docs/architecture.md, "Reloads").
            proxy_set_header ${PROXY_WORKER_HEADER} "$hostname/$pid";
            proxy_buffering off;
            # One relay buffer each way per connection; a frame larger than it is relayed as several TLS records.
            proxy_buffer_size ${proxy.relayBufferBytes};

            # Derived from the heartbeat: the server pings every ${nginxDuration(server.pingIntervalMs)}, so an idle
            # socket sees traffic well within these.
            proxy_read_timeout ${nginxDuration(proxy.readTimeoutMs)};
            proxy_send_timeout ${nginxDuration(proxy.sendTimeoutMs)};
            proxy_connect_timeout ${nginxDuration(proxy.connectTimeoutMs)};
            # A draining or full replica answers the handshake 503: try the next one (a handshake
            # is an idempotent GET). These also count towards max_fails, so the replica rests.
            proxy_next_upstream error timeout http_502 http_503;

            ${limitLines.join('\n            ')}

            # Handshakes are bodiless GETs. This does NOT bound WebSocket frames: after the upgrade
            # nginx relays frames without inspecting them; the server's maxMessageBytes
            # (${server.maxMessageBytes} bytes, close 1009) is the limit.
            client_max_body_size 1k;
`;
  return `# Rendered by ws-notifications from the topology; do not edit by hand.
# Target nginx ${proxy.nginxVersion}; ${options.tasks ? `every task of ${options.tasks}, resolved at each (re)load` : `${options.upstreams.length} replica(s)`}; strategy ${balancing.strategy}.
worker_processes ${proxy.workerProcesses};
# Two descriptors per proxied WebSocket (client side + upstream side), sized for ${proxy.targetConnections} connections.
worker_rlimit_nofile ${Math.min(proxy.maxOpenFiles, workerConnections + NGINX_FD_SLACK)};
# Old workers keep their WebSockets after a reload; this bounds how long. The replicas close
# those connections with 1001 before it (proxy.reload), so it is a last resort.
worker_shutdown_timeout ${nginxDuration(proxy.shutdownTimeoutMs)};
error_log ${errorLog} warn;
pid ${options.pidFile ?? (rt ? `${rt}/nginx.pid` : '/run/nginx.pid')};

events {
    worker_connections ${workerConnections};
}

http {
${
  rt
    ? `    client_body_temp_path ${rt}/client_body;
    proxy_temp_path ${rt}/proxy;
    fastcgi_temp_path ${rt}/fastcgi;
    uwsgi_temp_path ${rt}/uwsgi;
    scgi_temp_path ${rt}/scgi;
`
    : ''
}    server_tokens off;
    default_type application/octet-stream;

    # One line per WebSocket, written when it closes: the duration is the connection's lifetime.
    log_format ws_json escape=json '{"time":"$time_iso8601","remote_addr":"$remote_addr",'
        '"uri":"$request_uri","status":$status,"upstream":"$upstream_addr",'
        '"upstream_status":"$upstream_status","duration_s":$request_time,'
        '"bytes_sent":$bytes_sent,"bytes_received":$request_length}';
    access_log ${accessLog} ws_json;

    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }

    limit_conn_zone $binary_remote_addr zone=ws_conn_per_addr:10m;
    limit_conn_zone $binary_remote_addr zone=ws_api_per_addr:10m;
    limit_req_zone $binary_remote_addr zone=ws_handshakes:10m rate=${Math.max(1, limits.handshakesPerSecond)}r/s;
    limit_conn_status 503;
    limit_req_status 429;

    upstream ws_servers {
        # Shared by all workers: balancing counters and passive-health state are per upstream, not per worker.
        zone ws_servers 256k;
        ${balancingLine}
${serverLines.join('\n')}
    }

    server {
        listen ${bind(httpPort)};
        server_name _;

        # Only here, on the internal port the exporter and the local runner read; the public
        # TLS port answers 404 for it.
        location = ${NGINX_STATUS_PATH} {
            stub_status;
            ${statusAllow}
            deny all;
            access_log off;
        }
${
  options.vrrpMetricFile
    ? `
        # This proxy's VRRP state (1 while it holds the virtual address), written by keepalived.
        location = ${VRRP_METRICS_PATH} {
            alias ${options.vrrpMetricFile};
            default_type text/plain;
            ${statusAllow}
            deny all;
            access_log off;
        }
`
    : ''
}
        location / {
            return 301 https://$host${publicHttps === 443 ? '' : `:${publicHttps}`}$request_uri;
        }
    }

    server {
        listen ${bind(httpsPort)} ssl${proxy.workerProcesses > 1 ? ' reuseport' : ''} backlog=${proxy.listenBacklog};
        server_name _;

        ssl_certificate ${options.certFile};
        ssl_certificate_key ${options.keyFile};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
        ssl_prefer_server_ciphers off;
        # Held per connection for nginx's own writes only: relayed frames bypass it (proxy.tlsBufferBytes).
        ssl_buffer_size ${proxy.tlsBufferBytes};
        ssl_session_cache shared:ws_tls:10m;
        ssl_session_timeout 1h;
        # One TLS 1.3 ticket per handshake, not OpenSSL's two: a client resumes with its latest, and
        # each ticket costs a seal here and an unpack in the client.
        ssl_conf_command NumTickets 1;
${
  options.sessionTicketKeyFile
    ? `        # Shared by the HA pair: a client reconnecting after a failover resumes on the other proxy.
        ssl_session_tickets on;
        ssl_session_ticket_key ${options.sessionTicketKeyFile};`
    : '        ssl_session_tickets off;'
}

        # A peer stalling its TLS handshake or upgrade request (slowloris), or a client that stops
        # reading (a slow consumer the replica already dropped), is cut as soon as the replica's
        # write deadline (${nginxDuration(server.writeTimeoutMs)}) would cut it, not after nginx's default 60 s.
        client_header_timeout ${nginxDuration(clientTimeouts.clientHeaderTimeoutMs)};
        send_timeout ${nginxDuration(clientTimeouts.sendTimeoutMs)};

        location ${server.path} {
${webSocketBody}        }
${
  server.centrifuge
    ? `
        # Centrifugo's client protocol (server.centrifuge): the same replicas, limits and reloads.
        location = ${CENTRIFUGE_PATH} {
${webSocketBody}        }
`
    : ''
}
${proxy.publishApi ? publishApiLocation(topology, http11) : ''}${proxy.page.enabled && options.pageDir ? pageLocations(topology, options.pageDir) : ''}        location / {
            return 404;
        }
    }
}
`;
}

/**
 * The notification page (proxy.page): its two built files, and its config rendered here from the
 * topology, so nothing about the deployment is baked into the bundle. The page may talk to its
 * own origin and to the OpenID provider only.
 */
function pageLocations(topology: Topology, pageDir: string): string {
  const config = pageConfig(topology);
  const json = JSON.stringify(config);
  // Inside nginx's single quotes, `$` would start a variable and `'` end the string.
  if (/[$'\\]/.test(json)) throw new Error(`the page's config cannot go into nginx.conf as is: ${json}`);
  // Reached through the proxy (`via`), the provider is the page's own origin.
  const provider = config.auth.mode === 'jwt' && !config.auth.via ? ` ${new URL(config.auth.issuer).origin}` : '';
  const headers = `add_header Content-Security-Policy "default-src 'self'; connect-src 'self'${provider}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'" always;
            add_header X-Content-Type-Options nosniff always;`;
  return `${config.auth.mode === 'jwt' && config.auth.via ? devIdpLocation(config.auth.via, topology.proxy.connectTimeoutMs) : ''}        location = / {
            root ${pageDir};
            try_files /index.html =404;
            types { }
            default_type "text/html; charset=utf-8";
            ${headers}
        }

        location = /app.js {
            root ${pageDir};
            types { }
            default_type "application/javascript; charset=utf-8";
            ${headers}
        }

        location = /config.json {
            default_type application/json;
            ${headers}
            return 200 '${json}';
        }

`;
}

/**
 * The development IdP (auth.mode jwt with no provider named) for the page's sign-in: the browser
 * reaches ws-idp through the proxy, on the page's origin. The path goes on as is, and the forwarded
 * host and scheme let the provider hand out URLs that lead back here (app/src/idp/dev-idp.ts).
 */
function devIdpLocation(path: string, connectTimeoutMs: number): string {
  return `        location ^~ ${path}/ {
            proxy_pass http://${DEV_IDP.host}:${DEV_IDP.port};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout ${nginxDuration(connectTimeoutMs)};
        }

`;
}

/**
 * The publish API through the TLS port (proxy.publishApi): to any replica, since each stores
 * through the broker. A POST is not retried on another replica once sent (nginx never retries a
 * non-idempotent request); a backend retries with the same id, which the broker stores once.
 */
function publishApiLocation(topology: Topology, http11: string): string {
  const { proxy, server } = topology;
  const bodyLimit = publishBodyLimit(server.maxMessageBytes);
  const perAddress = proxy.limits.publishRequestsPerAddress;
  return `        location = ${PUBLISH_API_PATH} {
            limit_except POST { deny all; }
            ${perAddress > 0 ? `limit_conn ws_api_per_addr ${perAddress};` : '# limit_conn disabled (proxy.limits.publishRequestsPerAddress = 0)'}
            # A body is read whole in memory: never a temp file (whose directory the workers, as
            # an unprivileged user, may not write), and a trickled one is cut between reads.
            client_body_buffer_size ${bodyLimit};
            client_body_timeout ${nginxDuration(REQUEST_TIMEOUT_MS)};
            proxy_pass http://ws_servers;
            ${http11}
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout ${nginxDuration(proxy.connectTimeoutMs)};
            # Past what any replica would read: refused here, in the replicas' words (JSON naming the field).
            client_max_body_size ${bodyLimit};
            error_page 413 = @publish_too_large;
        }

        location @publish_too_large {
            default_type application/json;
            return 413 '{"field":"(body)","error":"larger than ${bodyLimit} bytes (data up to the message limit, ${server.maxMessageBytes} bytes, plus the envelope)"}';
        }

`;
}
