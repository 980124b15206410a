#!/usr/bin/env bash
# The project's test command (`npm test`). Installs what the tests need (idempotent), starts private Temporal
# and SeaweedFS servers on free ports in a temporary LEA_HOME (a developer's own servers are left alone),
# runs every test file with node's test runner, and stops the servers even when tests fail.
# Arguments: test files to run instead of all of test/*.test.ts, and options for node's test runner,
# e.g. `npm test -- test/config.test.ts --test-name-pattern=override`.
set -euo pipefail
cd "$(dirname "$0")/.."

LEA_SETUP_ORACLES=1 bash scripts/setup.sh
# The report test drives Debian's Chromium through playwright-core, which downloads no browser of its own.
[ -x /usr/bin/chromium ] || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

# Tests always get their own servers, whatever this shell points at.
unset TEMPORAL_ADDRESS TEMPORAL_NAMESPACE TEMPORAL_API_KEY TEMPORAL_TLS AWS_ENDPOINT_URL_S3 LEA_BUCKET \
  AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_PROFILE LEA_S3_PREFIX

read -r base < <(.tools/venv/bin/python scripts/free-port-block.py)
export LEA_HOME LEA_TEMPORAL_PORT=$base LEA_TEMPORAL_UI_PORT=$((base + 1)) LEA_S3_PORT=$((base + 10))
LEA_HOME=$(mktemp -d "${TMPDIR:-/tmp}/lea-test.XXXXXX")

cleanup() {
  local status=$?
  if [ "$status" -ne 0 ]; then
    for log in "$LEA_HOME"/logs/*.log; do [ -f "$log" ] && { echo "--- last lines of $log"; tail -n 20 "$log"; }; done
  fi
  node bin/lea.js dev down >/dev/null 2>&1 || true
  if [ "$status" -ne 0 ]; then
    # The state of the failed run (Temporal's SQLite, server logs; not the S3 data or keys), so a hang can be
    # read afterwards: `temporal server start-dev --db-filename <copy>/temporal.db`, then `temporal workflow show`.
    local keep="test-output/lea-home-$(date -u +%Y%m%dT%H%M%SZ)"
    mkdir -p "$keep"
    tar -C "$LEA_HOME" --exclude=./s3 --exclude=./work --exclude='./s3-*.json' -cf - . | tar -C "$keep" -xf - || true
    echo "state folder kept in $keep"
  fi
  rm -rf "$LEA_HOME"
}
trap cleanup EXIT

node bin/lea.js dev up
eval "$(node bin/lea.js dev env)"

files=() opts=()
for a in "$@"; do if [[ $a == -* ]]; then opts+=("$a"); else files+=("$a"); fi; done
[ ${#files[@]} -gt 0 ] || files=(test/*.test.ts)
node --import tsx --test --test-concurrency=1 "${opts[@]}" "${files[@]}"
