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

# Loads the addon through tfjs-node and runs one op; prints the TensorFlow version on success and
# leaves the reason for a failure in $cache/verify.log.
verify() {
  mkdir -p "$cache"
  TF_CPP_MIN_LOG_LEVEL=2 node -e "
    const tf = require('@tensorflow/tfjs-node');
    if (tf.getBackend() !== 'tensorflow') throw new Error('backend is ' + tf.getBackend());
    const s = tf.add(tf.tensor1d([1, 2]), 1).dataSync();
    if (s[0] !== 2 || s[1] !== 3) throw new Error('wrong result ' + s);
    console.log(tf.backend().binding.TF_Version);
  " 2>"$cache/verify.log"
}

[ -d "$tfjs_node" ] || { log "$tfjs_node is not installed (run npm ci first)"; exit 1; }
installed=$(node -p "require('./$tfjs_node/package.json').version")
if [ "$installed" != "$TFJS_NODE_VERSION" ]; then
  log "tfjs-node $installed is installed but this script pins $TFJS_NODE_VERSION: update the pins together"
  exit 1
fi

if version=$(verify); then
  log "native backend already works (libtensorflow $version)"
  exit 0
fi

fetch_wheel() {
  local wheel="$cache/$TF_WHEEL_FILE"
  if [ -f "$wheel" ] && echo "$TF_WHEEL_SHA256  $wheel" | sha256sum -c --status; then
    return 0
  fi
  mkdir -p "$cache" && rm -f "$wheel" || return 1
  log "downloading $TF_WHEEL_SPEC from PyPI into $cache"
  # --python-version/--platform: fetch the pinned wheel whatever this host's Python is.
  python3 -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: \
    --python-version 3.11 --implementation cp --platform manylinux_2_27_x86_64 \
    -d "$cache" "$TF_WHEEL_SPEC" || return 1
  echo "$TF_WHEEL_SHA256  $wheel" | sha256sum -c --status || { log "checksum mismatch for $wheel"; return 1; }
}

# deps/lib: the two libraries plus the link names binding.gyp asks for (-ltensorflow
# -ltensorflow_framework); the addon records the sonames and finds them via its rpath $ORIGIN/../../deps/lib.
# deps/include: only the C API headers the binding includes (transitively).
# (Steps are chained with &&: errexit does not apply inside a function called from an `if`.)
stage_deps() {
  local stage="$tfjs_node/deps.tmp"
  rm -rf "$stage" && mkdir -p "$stage/lib" &&
    python3 - "$cache/$TF_WHEEL_FILE" "$stage/wheel" <<'PY' &&
import fnmatch, sys, zipfile
wanted = ["tensorflow/libtensorflow_cc.so.2", "tensorflow/libtensorflow_framework.so.2",
          "tensorflow/include/tensorflow/c/*", "tensorflow/include/tensorflow/core/platform/ctstring*",
          "tensorflow/include/tsl/platform/ctstring*", "tensorflow/include/xla/tsl/c/*"]
with zipfile.ZipFile(sys.argv[1]) as wheel:
    for name in wheel.namelist():
        if any(fnmatch.fnmatch(name, w) for w in wanted):
            wheel.extract(name, sys.argv[2])
PY
    mv "$stage"/wheel/tensorflow/lib*.so.2 "$stage/lib/" &&
    mv "$stage/wheel/tensorflow/include" "$stage/include" &&
    rm -rf "$stage/wheel" &&
    ln -s libtensorflow_cc.so.2 "$stage/lib/libtensorflow.so" &&
    ln -s libtensorflow_framework.so.2 "$stage/lib/libtensorflow_framework.so" &&
    rm -rf "$tfjs_node/deps" && mv "$stage" "$tfjs_node/deps"
}

build_addon() {
  command -v g++ >/dev/null && command -v make >/dev/null ||
    { log "building the addon needs g++ and make (Debian: apt-get install g++ make)"; return 1; }
  local node_prefix pre_gyp
  node_prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")") || return 1
  # Local Node headers spare node-gyp its own download of them.
  if [ -z "${npm_config_nodedir:-}" ] && [ -f "$node_prefix/include/node/node_api.h" ]; then
    export npm_config_nodedir=$node_prefix
  fi
  pre_gyp=$(node -p "require.resolve('@mapbox/node-pre-gyp/bin/node-pre-gyp', { paths: ['$tfjs_node'] })") ||
    return 1
  log "compiling the tfjs-node addon against the staged libtensorflow"
  (cd "$tfjs_node" && node "$pre_gyp" install --build-from-source --loglevel=warn >&2)
}

wheel_route() {
  [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || { log "no $TF_WHEEL_SPEC wheel for $(uname -sm)"; return 1; }
  fetch_wheel && stage_deps && build_addon
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
