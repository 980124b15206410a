#!/usr/bin/env bash
# The XLA runtime that bench/hlo-time.py times dumped HLO modules with (benchmark-only: no test or run-time code
# needs it): jax and jaxlib pinned in tools/requirements-hlo.txt, installed into .tools/hlo-venv.
#   scripts/setup-hlo.sh [cpu|cuda12|cuda13]     (npm run setup:hlo -- cuda12)
# cuda12 / cuda13 add jax's CUDA plugin of the same version with its own CUDA and cuDNN wheels: pick the major that
# the driver supports (nvidia-smi's "CUDA Version"); it need not be the CUDA 12 that TensorFlow's GPU wheel needs.
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:-cpu}
venv=.tools/hlo-venv
req=tools/requirements-hlo.txt
case $variant in
  cpu) extra=() ;;
  cuda12 | cuda13) extra=("jax[$variant]==$(sed -n 's/^jax==//p' "$req")") ;;
  *) echo "usage: scripts/setup-hlo.sh [cpu|cuda12|cuda13]" >&2; exit 2 ;;
esac
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
echo "setup-hlo: installing $req ${extra[*]} into $venv" >&2
"$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req" "${extra[@]}"
"$venv/bin/python" -c 'import jax; print("setup-hlo: jax", jax.__version__, "devices", jax.devices())'
