#!/usr/bin/env bash
# `npm run setup:gpu`: @tensorflow/tfjs-node-gpu with an addon built against TensorFlow 2.21's CUDA 12 build,
# for GPU workers (Linux x86_64 only). Idempotent; not part of `npm ci`/`npm run setup` (several GB).
#
#  1. @tensorflow/tfjs-node-gpu@4.22.0 into node_modules (--no-save: not a dependency of the project, so
#     `npm ci` removes it again; rerun this script then) without its install script, whose download
#     targets CUDA 11.2 from a host these machines cannot reach.
#  2. The pinned, checksummed PyPI wheel tensorflow==2.21.0 (GPU-enabled on Linux x86_64) into
#     .tools/tfjs-gpu/; its libraries and C headers staged into tfjs-node-gpu's deps/ and the addon compiled
#     from source, as scripts/setup-tfjs-native.sh does for the CPU package (shared: scripts/tfjs-addon-lib.sh).
#  3. The CUDA 12 / cuDNN runtime wheels that tensorflow[and-cuda]==2.21.0 requires (read from the wheel's
#     METADATA) into the venv .tools/cuda-venv, and deps/nvidia linked to its site-packages/nvidia: the
#     TensorFlow libraries carry RUNPATH entries $ORIGIN/../nvidia/<lib>/lib, so the addon finds CUDA there
#     whatever the environment of the process that loads it. scripts/gpu-env.sh sets LD_LIBRARY_PATH to the
#     same folders for anything else (and for the check below).
#  4. Checks: every CUDA library TensorFlow opens loads, and tfjs-node-gpu loads and runs an op. Without a
#     GPU (no NVIDIA driver or device) TensorFlow runs the op on the CPU; that is reported, not an error.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pins. The wheel's Python tag only names the wheel file: nothing here runs Python code from it.
TF_WHEEL_SPEC=tensorflow==2.21.0
TF_WHEEL_FILE=tensorflow-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl
TF_WHEEL_SHA256=9056fbc9ba04235810b71ae6cbd958a196e8804fb53bbcffbf3e23b56155f124
TFJS_NODE_VERSION=4.22.0

cache=.tools/tfjs-gpu
cuda_venv=.tools/cuda-venv
pkg=@tensorflow/tfjs-node-gpu
tfjs_gpu=node_modules/$pkg
log() { echo "lea setup (tfjs-gpu): $*" >&2; }
. scripts/tfjs-addon-lib.sh

[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] ||
  { log "the $TF_WHEEL_SPEC GPU build exists for Linux x86_64 only, not $(uname -sm)"; exit 1; }
[ -d node_modules/@tensorflow/tfjs-node ] || { log "run npm ci first"; exit 1; }

installed_version() { node -p "require('./$tfjs_gpu/package.json').version" 2>/dev/null || true; }
if [ "$(installed_version)" != "$TFJS_NODE_VERSION" ]; then
  log "installing $pkg@$TFJS_NODE_VERSION (--no-save --ignore-scripts)"
  npm install --no-save --ignore-scripts --no-audit --no-fund "$pkg@$TFJS_NODE_VERSION" >&2
fi

tfjs_fetch_wheel "$cache" "$TF_WHEEL_SPEC" "$TF_WHEEL_FILE" "$TF_WHEEL_SHA256"

# The CUDA wheels: the wheel's own `Requires-Dist: ...; extra == "and-cuda"` lines, as pip would install
# them for tensorflow[and-cuda]==2.21.0. The venv is redone only when that list changes.
python3 - "$cache/$TF_WHEEL_FILE" >"$cache/cuda-requirements.txt.new" <<'PY'
import re, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    meta = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    for line in wheel.read(meta).decode().splitlines():
        m = re.match(r'Requires-Dist:\s*([^;]+);\s*extra\s*==\s*"and-cuda"\s*$', line)
        if m:
            print(m.group(1).strip())
PY
[ -s "$cache/cuda-requirements.txt.new" ] || { log "no and-cuda requirements in $TF_WHEEL_FILE"; exit 1; }
mv "$cache/cuda-requirements.txt.new" "$cache/cuda-requirements.txt"
mark="$cuda_venv/.installed-$(sha256sum "$cache/cuda-requirements.txt" | cut -c1-16)"
if [ ! -f "$mark" ]; then
  [ -x "$cuda_venv/bin/python" ] || python3 -m venv "$cuda_venv"
  log "installing $(wc -l <"$cache/cuda-requirements.txt") CUDA 12 / cuDNN wheels into $cuda_venv (several GB)"
  "$cuda_venv/bin/python" -m pip install --disable-pip-version-check --no-cache-dir --progress-bar off \
    --only-binary=:all: -r "$cache/cuda-requirements.txt" >&2
  "$cuda_venv/bin/python" -m pip freeze --disable-pip-version-check >"$cuda_venv/installed.txt"
  rm -f "$cuda_venv"/.installed-* && touch "$mark"
fi
nvidia_dir=$("$cuda_venv/bin/python" -c 'import nvidia, os; print(os.path.realpath(list(nvidia.__path__)[0]))')

# What TensorFlow opens (CUDA runtime, cuBLAS, cuDNN, cuFFT, cuSPARSE, cuSOLVER, NCCL, CUPTI, NVRTC;
# libcuda.so.1 is the driver's, not a wheel's) must load with its dependencies: by the path under deps/nvidia
# that TensorFlow's RUNPATH leads to (with no LD_LIBRARY_PATH), and by soname under scripts/gpu-env.sh.
check_cuda_libs() {
  local libs="cuda_runtime/libcudart.so.12 cublas/libcublasLt.so.12 cublas/libcublas.so.12 cudnn/libcudnn.so.9
    cufft/libcufft.so.11 cusparse/libcusparse.so.12 cusolver/libcusolver.so.11 nccl/libnccl.so.2
    cuda_cupti/libcupti.so.12 cuda_nvrtc/libnvrtc.so.12"
  # argv[1]: the nvidia/ folder to load from by path, or "" to load by soname.
  local code='import ctypes, sys
for lib in sys.argv[2:]:
    folder, name = lib.split("/")
    ctypes.CDLL(f"{sys.argv[1]}/{folder}/lib/{name}" if sys.argv[1] else name)'
  # shellcheck disable=SC2086 # $libs: one word per library
  env -u LD_LIBRARY_PATH "$cuda_venv/bin/python" -c "$code" "$tfjs_gpu/deps/nvidia" $libs &&
    (. scripts/gpu-env.sh && "$cuda_venv/bin/python" -c "$code" "" $libs)
}

# The addon is rebuilt when it does not load, or when deps/ came from another wheel.
stamp="$tfjs_gpu/deps/.from-$TF_WHEEL_SHA256"
link_cuda() { ln -sfn "$nvidia_dir" "$tfjs_gpu/deps/nvidia"; }
verify() { (. scripts/gpu-env.sh && TF_CPP_MIN_LOG_LEVEL=0 tfjs_verify "$pkg" "$cache/verify.log"); }
if [ -f "$stamp" ] && link_cuda && result=$(verify) && [ "${result##* }" = functions ]; then
  log "$pkg already built against $TF_WHEEL_SPEC"
else
  { tfjs_stage_deps "$cache/$TF_WHEEL_FILE" "$tfjs_gpu" && touch "$stamp" && link_cuda; } ||
    { log "could not stage $TF_WHEEL_FILE into $tfjs_gpu/deps"; exit 1; }
  tfjs_build_addon "$tfjs_gpu" || { log "could not compile the $pkg addon"; exit 1; }
  result=$(verify) || {
    tail -n 5 "$cache/verify.log" >&2
    log "$pkg does not load (log: $cache/verify.log)"
    exit 1
  }
fi
check_cuda_libs || { log "a CUDA library in $nvidia_dir does not load (above)"; exit 1; }

version=${result%% *}
read -r _ device _ <<<"$result"
if [ "$device" = gpu ]; then
  log "ready: $pkg runs on the GPU (libtensorflow $version, CUDA libraries from $cuda_venv)"
else
  why=$(grep -m1 -iE 'cuda|gpu' "$cache/verify.log" | sed -E 's/^.*\] //' || true)
  log "ready: $pkg loads and runs (libtensorflow $version, CUDA libraries from $cuda_venv), but TensorFlow" \
    "found no GPU here${why:+ ($why)}; lea uses the CPU backends on this machine"
fi
