#!/usr/bin/env bash
# `npm start`: the main job on a fresh clone. Installs what is missing (npm dependencies, nginx,
# Prometheus and the nginx exporter, nats-server, certificates), then runs the local topology with the default
# profile, scraped by Prometheus, and prints the summary.
# Extra arguments go to `npm run local` (see `npm run local -- --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x node_modules/.bin/tsx ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "start: installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund
fi

if ! command -v nginx >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "start: nginx is missing; installing Debian's nginx-light (apt-get install -y nginx-light)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
    # The package may start a system nginx on port 80; this project runs its own instances.
    if [ -f /run/nginx.pid ]; then nginx -s stop 2>/dev/null || true; fi
  else
    echo "start: nginx is required and not installed. Install it, then run npm start again:" >&2
    if command -v apt-get >/dev/null 2>&1; then echo "  sudo apt-get install -y nginx-light" >&2
    elif command -v dnf >/dev/null 2>&1; then echo "  sudo dnf install -y nginx" >&2
    elif command -v brew >/dev/null 2>&1; then echo "  brew install nginx" >&2
    else echo "  (your package manager) install nginx" >&2; fi
    exit 1
  fi
fi

# Monitoring is optional for the main job: installed as root, otherwise left out with a note.
monitoring=(--monitoring)
if ! command -v prometheus >/dev/null 2>&1 || ! { command -v prometheus-nginx-exporter || command -v nginx-prometheus-exporter; } >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "start: installing Debian's prometheus and prometheus-nginx-exporter (monitoring)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus prometheus-nginx-exporter >/dev/null
    pkill -x prometheus 2>/dev/null || true
  else
    echo "start: Prometheus is not installed; running without monitoring (sudo apt-get install -y prometheus prometheus-nginx-exporter)"
    monitoring=()
  fi
fi

# nats-server: the broker every replica shares (the default), and its tests. Installed as root;
# without it the run falls back to per-replica fan-out, with a note.
broker=()
if ! command -v nats-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "start: installing Debian's nats-server (the broker)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nats-server >/dev/null
    pkill -x nats-server 2>/dev/null || true
  else
    echo "start: nats-server is not installed; running with per-replica fan-out (--no-broker). For the broker: sudo apt-get install -y nats-server"
    broker=(--no-broker)
  fi
fi

# keepalived: the HA proxy pair (proxy.ha); the tests check its rendered config with it.
if ! command -v keepalived >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "start: installing Debian's keepalived (the HA proxy pair, and its tests)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends keepalived >/dev/null
    pkill -x keepalived 2>/dev/null || true
  else
    echo "start: keepalived is not installed; the tests of the HA proxy pair need it (sudo apt-get install -y keepalived)"
  fi
fi

command -v openssl >/dev/null 2>&1 || { echo "start: openssl is required (certificates): sudo apt-get install -y openssl" >&2; exit 1; }

npx tsx certs/cli.ts
# node itself (not the tsx wrapper), so the runner is npm's child and sees npm go (see scripts/local.ts).
exec node --import tsx scripts/local.ts "${monitoring[@]}" "${broker[@]}" "$@"
