# Sourced by scripts/start.sh and .ci/run: the Debian packages the project's runs and tests use,
# each named by the command that shows it is there. One list, so `npm start` installs what
# `npm test` needs and CI adds only what its Docker suites need.

# What `npm test` uses: the real proxy and the follower beside it (curl), certificates,
# monitoring (Prometheus, promtool and the exporter), the broker, the HA pair (keepalived, and
# iptables for the namespaces' forwarding), and headless Chromium for the page's tests (driven by
# playwright-core: no browser is downloaded).
TEST_PACKAGES=(
  nginx:nginx-light
  curl:curl
  openssl:openssl
  prometheus:prometheus
  prometheus-nginx-exporter:prometheus-nginx-exporter
  nats-server:nats-server
  keepalived:keepalived
  iptables:iptables
  chromium:chromium
)
# What CI adds for `npm run test:docker` and `test:swarm`: the engine, and debootstrap for the
# offline base images (no image registry is reachable).
DOCKER_PACKAGES=(
  dockerd:docker.io
  debootstrap:debootstrap
)

# Prints the packages of the given command:package pairs whose command is missing.
missing_packages() {
  local pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || printf '%s\n' "${pair#*:}"
  done
}

# Installs the given packages with apt-get (root), then stops the system instances that some of
# them start (nginx on port 80, prometheus, nats-server, keepalived): the project runs its own.
install_packages() {
  [ $# -gt 0 ] || return 0
  echo "installing Debian packages: $*"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  pkill -x prometheus 2>/dev/null || true
  pkill -x nats-server 2>/dev/null || true
  pkill -x keepalived 2>/dev/null || true
  if [ -f /run/nginx.pid ]; then nginx -s stop 2>/dev/null || true; fi
}
