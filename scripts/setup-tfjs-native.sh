#!/usr/bin/env bash
# Gives @tensorflow/tfjs-node a working native addon without its own download step, which fetches
# libtensorflow from a host that only the public internet reaches. Idempotent, run by scripts/setup.sh.
#
# Route 1 (Linux x86_64): the C libraries and headers of PyPI's tensorflow-cpu wheel, which export every
#   TF_/TFE_ function the 4.22 binding calls, are staged into tfjs-node's deps/ (the layout its
#   binding.gyp links against) and the addon is compiled from source with node-gyp.
# Route 2 (elsewhere, or if route 1 fails): tfjs-node's own install script (download of libtensorflow
#   and a prebuilt addon), for machines whose network allows it.
# Either way the result is verified by loading the backend and running an op; failure exits non-zero.
# package.json's allowScripts denies tfjs-node's own install script during `npm ci`: offline it fails
# (and with it the whole install) before this postinstall step could run.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pins. The wheel's Python tag only names the wheel file: nothing here runs Python code from it.
TF_WHEEL_SPEC=tensorflow-cpu==2.21.0
TF_WHEEL_FILE=tensorflow_cpu-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl
TF_WHEEL_SHA256=2b847d217b02ee7731ed91431daf3250daa0196c3c94614d23be27232e6e5b6c
TFJS_NODE_VERSION=4.22.0

cache=.tools/tfjs-native
tfjs_node=node_modules/@tensorflow/tfjs-node
log() { echo "lea setup (tfjs-native): $*" >&2; }

# The steps shared with scripts/setup-tfjs-gpu.sh: tfjs_fetch_wheel, tfjs_stage_deps, tfjs_build_addon,
# tfjs_verify.
. scripts/tfjs-addon-lib.sh
verify() {
  local out
  out=$(tfjs_verify @tensorflow/tfjs-node "$cache/verify.log") && echo "${out%% *}"
}

[ -d "$tfjs_node" ] || { log "$tfjs_node is not installed (run npm ci first)"; exit 1; }
installed=$(node -p "require('./$tfjs_node/package.json').version")
if [ "$installed" != "$TFJS_NODE_VERSION" ]; then
  log "tfjs-node $installed is installed but this script pins $TFJS_NODE_VERSION: update the pins together"
  exit 1
fi

# An addon built before the binding patch (eager-only) is rebuilt where the wheel route can patch it.
if out=$(tfjs_verify @tensorflow/tfjs-node "$cache/verify.log") &&
  { [ "${out##* }" = functions ] || [ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]; }; then
  log "native backend already works (libtensorflow ${out%% *}, ${out##* })"
  exit 0
fi

wheel_route() {
  [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || { log "no $TF_WHEEL_SPEC wheel for $(uname -sm)"; return 1; }
  tfjs_fetch_wheel "$cache" "$TF_WHEEL_SPEC" "$TF_WHEEL_FILE" "$TF_WHEEL_SHA256" &&
    tfjs_stage_deps "$cache/$TF_WHEEL_FILE" "$tfjs_node" && tfjs_build_addon "$tfjs_node"
}

download_route() {
  log "trying tfjs-node's own install (downloads libtensorflow and a prebuilt addon)"
  # Its script calls node-pre-gyp by name, as npm's PATH would provide it.
  (cd "$tfjs_node" && PATH="$PWD/../../.bin:$PATH" node scripts/install.js >&2)
}

if wheel_route && version=$(verify); then
  log "native backend built from $TF_WHEEL_SPEC (libtensorflow $version)"
elif download_route && version=$(verify); then
  log "native backend installed by tfjs-node's download (libtensorflow $version)"
else
  tail -n 5 "$cache/verify.log" >&2
  log "no working native backend; LEA_TF_BACKEND=wasm runs without it (slower)"
  exit 1
fi
