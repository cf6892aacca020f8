#!/usr/bin/env bash
# Builds the base images the Dockerfiles need, without any image registry: a Debian bookworm
# root filesystem from the Debian mirror configured on this machine (read at run time) is
# imported as an image, then Node (the host's own binary and npm) and nginx (Debian's package)
# are layered on it. Idempotent: images that exist are kept (FORCE=1 rebuilds). The names are
# OFFLINE_BASE_IMAGES in app/src/topology (printed by scripts/offline-image-names.ts): the Node
# stand-in for node:20-bookworm-slim (user "node", uid 1000), nginx (Debian's nginx-light 1.22)
# for nginx:1.30, Prometheus, the nginx exporter and nats-server (the broker) from Debian's packages.
# The monitoring stand-ins keep the public images' contract: the entrypoint is the binary (the
# stack passes only flags), Prometheus runs as nobody with its data in /prometheus, and wget
# is there for the health check. Grafana is not packaged by Debian: it has no stand-in.
# Use them with BASE_IMAGES=offline (see README).
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x node_modules/.bin/tsx ] || { echo "offline-images: npm dependencies are missing: run npm ci first" >&2; exit 1; }
# DEBIAN, NODE, NGINX, PROMETHEUS, EXPORTER, NATS: one home for the names, the topology's.
eval "$(node --import tsx scripts/offline-image-names.ts)"

have() { [ "${FORCE:-0}" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

mirror() {
  local f=/etc/apt/sources.list.d/debian.sources
  if [ -f "$f" ]; then
    awk '/^URIs:/ {print $2; exit}' "$f"
  elif [ -f /etc/apt/sources.list ]; then
    awk '/^deb / && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list
  fi
}

if ! have "$DEBIAN"; then
  command -v debootstrap >/dev/null || { echo "offline-images: debootstrap is required (apt-get install -y debootstrap)" >&2; exit 1; }
  url=$(mirror)
  [ -n "$url" ] || { echo "offline-images: no Debian mirror found in /etc/apt" >&2; exit 1; }
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
  echo "offline-images: debootstrap bookworm from $url"
  debootstrap --variant=minbase bookworm "$dir" "$url" >/dev/null
  # Point apt inside the image at the same mirror.
  echo "deb $url bookworm main" > "$dir/etc/apt/sources.list"
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -c . | docker import --change 'CMD ["bash"]' - "$DEBIAN" >/dev/null
  rm -rf "$dir"
  trap - EXIT
  echo "offline-images: built $DEBIAN"
fi

if ! have "$NODE"; then
  node_bin=$(command -v node)
  npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  ctx=$(mktemp -d)
  cp "$node_bin" "$ctx/node"
  cp -a "$npm_dir" "$ctx/npm"
  # The host's trust store: where the registry is reached through a TLS-inspecting egress proxy,
  # npm inside the build needs the same CAs the host trusts.
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/ca-certificates.crt"
  cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM $DEBIAN
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt npm_config_cafile=/etc/ssl/certs/ca-certificates.crt npm_config_update_notifier=false
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s /usr/local/lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s /usr/local/lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \
 && node --version && npm --version
CMD ["node"]
DOCKERFILE
  docker build -q -t "$NODE" "$ctx" >/dev/null
  rm -rf "$ctx"
  echo "offline-images: built $NODE ($(node --version) from this host)"
fi

# A Debian package on the base image, built from a Dockerfile body given on stdin.
build_from_debian() {
  local image=$1 ctx
  ctx=$(mktemp -d)
  { echo "FROM $DEBIAN"; cat; } > "$ctx/Dockerfile"
  docker build -q -t "$image" "$ctx" >/dev/null
  rm -rf "$ctx"
  echo "offline-images: built $image"
}

if ! have "$NGINX"; then
  build_from_debian "$NGINX" <<'DOCKERFILE'
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >/dev/null \
 && rm -rf /var/lib/apt/lists/* && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log \
 && nginx -v
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
DOCKERFILE
fi

if ! have "$PROMETHEUS"; then
  build_from_debian "$PROMETHEUS" <<'DOCKERFILE'
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus wget >/dev/null \
 && rm -rf /var/lib/apt/lists/* && mkdir -p /prometheus && chown nobody:nogroup /prometheus && prometheus --version 2>&1 | head -1
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
DOCKERFILE
fi

if ! have "$EXPORTER"; then
  build_from_debian "$EXPORTER" <<'DOCKERFILE'
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-nginx-exporter >/dev/null \
 && rm -rf /var/lib/apt/lists/* && ln -s prometheus-nginx-exporter /usr/bin/nginx-prometheus-exporter
USER nobody
EXPOSE 9113
ENTRYPOINT ["/usr/bin/nginx-prometheus-exporter"]
DOCKERFILE
fi

# The broker: like the public nats:*-alpine image, `nats-server ...` as the command, wget for the health check.
if ! have "$NATS"; then
  build_from_debian "$NATS" <<'DOCKERFILE'
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nats-server wget >/dev/null \
 && rm -rf /var/lib/apt/lists/* && mkdir -p /data && nats-server --version
EXPOSE 4222 8222
CMD ["nats-server", "--jetstream", "--store_dir", "/data"]
DOCKERFILE
fi

docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^ws-notifications/' || true
