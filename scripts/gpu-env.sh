#!/usr/bin/env bash
# LD_LIBRARY_PATH for the CUDA 12 / cuDNN libraries that `npm run setup:gpu` installed into .tools/cuda-venv.
# Source it (`. scripts/gpu-env.sh`) or run a command under it (`scripts/gpu-env.sh node bin/lea.js worker`).
# tfjs-node-gpu's addon does not need it (its TensorFlow libraries find them through deps/nvidia, see
# scripts/setup-tfjs-gpu.sh); it is for other programs and for checking the libraries with the loader's
# ordinary search. Prints nothing; does nothing when the venv is absent.
_lea_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for _lea_dir in "$_lea_root"/.tools/cuda-venv/lib/python3*/site-packages/nvidia/*/lib; do
  [ -d "$_lea_dir" ] || continue
  case ":${LD_LIBRARY_PATH:-}:" in
    *":$_lea_dir:"*) ;;
    *) LD_LIBRARY_PATH="$_lea_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
  esac
done
export LD_LIBRARY_PATH
unset _lea_root _lea_dir
if [ "${BASH_SOURCE[0]}" = "$0" ] && [ $# -gt 0 ]; then exec "$@"; fi
