#!/usr/bin/env bash
# The GPU check of compiled steps, for a machine with an NVIDIA GPU (under 5 minutes there). Needs: Node.js 20.19+,
# Python 3 with venv and pip, g++ and make, the npm registry and PyPI (`npm ci`, then `npm run setup:gpu`: the
# TensorFlow 2.21 GPU wheel and its CUDA 12 / cuDNN wheels, several GB, built with the same binding patch as the CPU
# addon). Prints the backend and device, then one training step of each paper-size stage (fMRI autoencoder,
# MaskGIT) per compile mode: the first call (trace and XLA compile) and the steady-state step time. With a folder
# argument (default: $OUT, else gpu-check/), TensorFlow writes each XLA-compiled step's HLO modules under DIR/hlo
# (XLA_FLAGS=--xla_dump_to) and the JSON of the timings to DIR.
#   scripts/gpu-check.sh [DIR] [--modes xla,graph] [--steps N]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-check}}
[ $# -gt 0 ] && shift
mkdir -p "$out/hlo"
[ -d node_modules/@tensorflow/tfjs-node-gpu ] ||
  { echo "gpu-check: run npm ci && npm run setup:gpu first (tfjs-node-gpu is not installed)" >&2; exit 1; }
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
export XLA_FLAGS="${XLA_FLAGS:-} --xla_dump_to=$out/hlo --xla_dump_hlo_as_text"
# no forced backend: on a machine without a usable GPU the default order runs the same steps on the CPU and says so
OUT=$out exec scripts/gpu-env.sh node --import tsx bench/compiled-steps.ts --size paper --modes xla,graph,eager "$@"
