# Steps shared by scripts/setup-tfjs-native.sh (@tensorflow/tfjs-node, CPU) and scripts/setup-tfjs-gpu.sh
# (@tensorflow/tfjs-node-gpu): both give a tfjs-node 4.22 package a native addon compiled against the C
# library of a pinned PyPI TensorFlow wheel, without the package's own download step. Sourced, not run;
# the caller defines log(). Steps are chained with &&: errexit does not apply inside a function called
# from an `if` or an `&&` list.

# tfjs_fetch_wheel CACHE SPEC FILE SHA256: the pinned wheel in CACHE, checked against SHA256; downloads it
# (no dependencies, any host Python: the Python tag only names the file) when it is absent or wrong.
tfjs_fetch_wheel() {
  local cache=$1 spec=$2 file=$3 sha=$4
  local wheel="$cache/$file"
  if [ -f "$wheel" ] && echo "$sha  $wheel" | sha256sum -c --status; then
    return 0
  fi
  mkdir -p "$cache" && rm -f "$wheel" || return 1
  log "downloading $spec from PyPI into $cache"
  python3 -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: \
    --python-version 3.11 --implementation cp --platform manylinux_2_27_x86_64 \
    -d "$cache" "$spec" || return 1
  echo "$sha  $wheel" | sha256sum -c --status || { log "checksum mismatch for $wheel"; return 1; }
}

# tfjs_stage_deps WHEEL PACKAGE_DIR: PACKAGE_DIR/deps as the package's binding.gyp links against it.
# deps/lib: the two libraries plus the link names binding.gyp asks for (-ltensorflow
# -ltensorflow_framework); the addon records the sonames and finds them via its rpath $ORIGIN/../../deps/lib.
# deps/include: only the C API headers the binding includes (transitively).
tfjs_stage_deps() {
  local wheel=$1 pkg=$2
  local stage="$pkg/deps.tmp"
  rm -rf "$stage" && mkdir -p "$stage/lib" &&
    python3 - "$wheel" "$stage/wheel" <<'PY' &&
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
    rm -rf "$pkg/deps" && mv "$stage" "$pkg/deps"
}

# tfjs_patch_binding PACKAGE_DIR: applies scripts/tfjs-binding-functions.patch to the package's binding sources
# (once: a patched source is left as it is). The patch adds two calls to the addon: registerFunction (a serialized
# FunctionDef into the eager context, which executeOp then runs like any op; lib/compute/tf-function.ts) and
# getAllOpList (every op's argument names, which a FunctionDef's input references need).
tfjs_patch_binding() {
  local pkg=$1 patch_file
  patch_file=$(readlink -f scripts/tfjs-binding-functions.patch)
  grep -q 'lea-pipeline patch' "$pkg/binding/tfjs_binding.cc" && return 0
  command -v patch >/dev/null || { log "patching the addon needs patch (Debian: apt-get install patch)"; return 1; }
  log "patching the $(basename "$pkg") binding (registerFunction, getAllOpList)"
  patch -d "$pkg" -p1 --forward --quiet <"$patch_file"
}

# tfjs_build_addon PACKAGE_DIR: patches the package's binding and compiles its addon from source against its
# staged deps/.
tfjs_build_addon() {
  local pkg=$1 node_prefix pre_gyp
  command -v g++ >/dev/null && command -v make >/dev/null ||
    { log "building the addon needs g++ and make (Debian: apt-get install g++ make)"; return 1; }
  tfjs_patch_binding "$pkg" || return 1
  node_prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")") || return 1
  # Local Node headers spare node-gyp its own download of them.
  if [ -z "${npm_config_nodedir:-}" ] && [ -f "$node_prefix/include/node/node_api.h" ]; then
    export npm_config_nodedir=$node_prefix
  fi
  pre_gyp=$(node -p "require.resolve('@mapbox/node-pre-gyp/bin/node-pre-gyp', { paths: ['$pkg'] })") ||
    return 1
  log "compiling the $(basename "$pkg") addon against the staged libtensorflow"
  (cd "$pkg" && node "$pre_gyp" install --build-from-source --loglevel=warn >&2)
}

# tfjs_verify PACKAGE LOGFILE: loads PACKAGE (an installed tfjs-node flavour), checks that it is the current
# backend and that an op gives the right result; prints "<libtensorflow version> <gpu|cpu> <functions|eager-only>"
# (cpu: TensorFlow lists no GPU device; eager-only: an addon without tfjs_patch_binding's calls, e.g. tfjs-node's
# own download, which runs every step op by op) and leaves the reason for a failure in LOGFILE.
tfjs_verify() {
  local pkg=$1 logfile=$2
  mkdir -p "$(dirname "$logfile")" &&
    TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2} node -e "
    const tf = require('$pkg');
    if (tf.getBackend() !== 'tensorflow') throw new Error('backend is ' + tf.getBackend());
    const s = tf.add(tf.tensor1d([1, 2]), 1).dataSync();
    if (s[0] !== 2 || s[1] !== 3) throw new Error('wrong result ' + s);
    const b = tf.backend();
    console.log(b.binding.TF_Version + ' ' + (b.isUsingGpuDevice ? 'gpu' : 'cpu') + ' ' +
      (typeof b.binding.registerFunction === 'function' ? 'functions' : 'eager-only'));
  " 2>"$logfile"
}
