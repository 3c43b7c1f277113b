#!/usr/bin/env bash
# The prepared GPU check (benchmarks/gpu.py) on a bare GPU machine with PyTorch but no network.
#   here, once:   bash scripts/gpu_check.sh --fetch      # wheels vidpolicy needs beyond PyTorch, into .whl/
#   there:        bash scripts/gpu_check.sh OUTDIR [--smoke]  # installs .whl/ to /tmp/site, writes OUTDIR/gpu.json and gpu.log
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--fetch" ]; then
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux2010_x86_64 -d .whl diffusers==0.39.0 decord==0.6.0 importlib_metadata==10.2.0
  exit 0
fi
out="${1:?usage: gpu_check.sh OUTDIR [gpu.py flags] | --fetch}"; shift
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv > "$out/nvidia-smi.csv" 2>&1 || true
python3 benchmarks/gpu.py --out "$out/gpu.json" "$@" 2>&1 | tee "$out/gpu.log"
