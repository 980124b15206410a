#!/usr/bin/env bash
# The GPU check of compiled steps, for a machine with an NVIDIA GPU (under 5 minutes there). Needs: Node.js 20.19+,
# Python 3 with venv and pip, g++ and make, the npm registry and PyPI (`npm ci`, then `npm run setup:gpu`: the
# TensorFlow 2.21 GPU wheel and its CUDA 12 / cuDNN wheels, several GB, built with the same binding patch as the CPU
# addon). Prints the backend and device, then one training step of each paper-size stage (fMRI autoencoder,
# MaskGIT) per compile mode: the first call (trace and XLA compile) and the steady-state step time. With a folder
# argument (default: $OUT, else gpu-check/), TensorFlow writes each XLA-compiled step's HLO modules under DIR/hlo
# (XLA_FLAGS=--xla_dump_to, as text and as proto; module_0000 is the autoencoder's step, module_0001 MaskGIT's) and
# the JSON of the timings to DIR.
# Then, where jax is importable (.tools/hlo-venv from `scripts/setup-hlo.sh cuda12` or `cuda13`, whichever CUDA
# major the driver supports; or the Python named by LEA_HLO_PYTHON), bench/hlo-time.py compiles each dumped module
# with jaxlib and times it on the GPU: the compiled program's time without TensorFlow's runtime around it. Where
# TensorFlow's GPU addon is not installed (its CUDA 12 wheels do not fit the driver, or could not be fetched), the
# check still runs with jax: the CPU addon traces and compiles the paper-size xla steps once (--modes xla --steps 1),
# which writes the same HLO, and jaxlib times those modules on the GPU.
#   scripts/gpu-check.sh [DIR] [--modes xla,graph] [--steps N]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-check}}
[ $# -gt 0 ] && shift
mkdir -p "$out/hlo"
hlo_python=${LEA_HLO_PYTHON:-.tools/hlo-venv/bin/python}
have_jax() { [ -x "$hlo_python" ] && "$hlo_python" -c 'import jax' 2>/dev/null; }
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
export XLA_FLAGS="${XLA_FLAGS:-} --xla_dump_to=$out/hlo --xla_dump_hlo_as_text --xla_dump_hlo_as_proto"
if [ -d node_modules/@tensorflow/tfjs-node-gpu ]; then
  # no forced backend: on a machine without a usable GPU the default order runs the same steps on the CPU and says so
  OUT=$out scripts/gpu-env.sh node --import tsx bench/compiled-steps.ts --size paper --modes xla,graph,eager "$@"
elif have_jax; then
  echo "gpu-check: tfjs-node-gpu is not installed: the CPU addon compiles the xla steps for the HLO dump," \
    "jaxlib times them"
  OUT=$out LEA_TF_BACKEND=tensorflow node --import tsx bench/compiled-steps.ts --size paper "$@" --modes xla --steps 1
else
  echo "gpu-check: run npm ci && npm run setup:gpu first (tfjs-node-gpu is not installed)," \
    "or scripts/setup-hlo.sh cuda12|cuda13 to time the compiled steps with jaxlib" >&2
  exit 1
fi
if have_jax; then
  env -u XLA_FLAGS OUT="$out" "$hlo_python" bench/hlo-time.py --dump "$out/hlo" --runs 20
else
  echo "gpu-check: no jax in $hlo_python: bench/hlo-time.py skipped (scripts/setup-hlo.sh cuda12|cuda13 installs it)"
fi
