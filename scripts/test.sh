#!/usr/bin/env bash
# Runs the test suites named as arguments (unit, integration, e2e, docker) with node's built-in
# test runner through tsx. Node 20's runner does not discover .ts files itself, so we list them.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- unit integration e2e
files=()
for suite in "$@"; do
  [ -d "test/$suite" ] || { echo "no such test suite: test/$suite" >&2; exit 2; }
  while IFS= read -r f; do files+=("$f"); done < <(find "test/$suite" -name '*.test.ts' | sort)
done
[ ${#files[@]} -gt 0 ] || { echo "no test files in: $*" >&2; exit 2; }
export CHECKPOINT_DISABLE=1
exec node --import tsx --test --test-force-exit --test-reporter=spec "${files[@]}"
