#!/usr/bin/env bash
# `npm start`: the main job on a fresh clone. Installs what is missing (npm dependencies, and as
# root the Debian packages `npm test` uses: scripts/system-packages.sh), makes the certificates,
# then runs the local topology with the default profile, scraped by Prometheus, and prints the
# summary. Extra arguments go to `npm run local` (see `npm run local -- --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/system-packages.sh

if [ ! -x node_modules/.bin/tsx ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "start: installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund
fi

mapfile -t missing < <(missing_packages "${TEST_PACKAGES[@]}")
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    printf 'start: '; install_packages "${missing[@]}"
  else
    echo "start: not root, so these stay missing: ${missing[*]} (sudo apt-get install -y ${missing[*]})"
  fi
fi

command -v nginx >/dev/null 2>&1 || { echo "start: nginx is required (Debian: nginx-light; Fedora: nginx; macOS: brew install nginx)" >&2; exit 1; }
command -v openssl >/dev/null 2>&1 || { echo "start: openssl is required (certificates): sudo apt-get install -y openssl" >&2; exit 1; }
# Monitoring and the broker are optional for the main job: without them it runs with a note.
monitoring=(--monitoring)
if ! command -v prometheus >/dev/null 2>&1 || ! { command -v prometheus-nginx-exporter || command -v nginx-prometheus-exporter; } >/dev/null 2>&1; then
  echo "start: Prometheus or the nginx exporter is missing; running without monitoring"
  monitoring=()
fi
broker=()
if ! command -v nats-server >/dev/null 2>&1; then
  echo "start: nats-server is missing; running with per-replica fan-out (--no-broker)"
  broker=(--no-broker)
fi

npx tsx certs/cli.ts
# node itself (not the tsx wrapper), so the runner is npm's child and sees npm go (see scripts/local.ts).
# With the development OpenID provider: tokens for every virtual user (`npm start -- --no-auth` turns it off).
exec node --import tsx scripts/local.ts "${monitoring[@]}" "${broker[@]}" --auth "$@"
