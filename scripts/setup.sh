#!/usr/bin/env bash
# Create .venv with Python 3.12 and install vidpolicy (with its test extra and its LeRobot plugin); install FFmpeg when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v ffmpeg >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq ffmpeg) >/dev/null
  else
    echo "warning: FFmpeg not found (torchcodec needs it for AV1); install it with your package manager" >&2
  fi
fi
PY=python3
if command -v pyenv >/dev/null 2>&1 && [ -f .python-version ]; then PY="$(pyenv which python3 2>/dev/null || echo python3)"; fi
"$PY" -c 'import sys; assert sys.version_info >= (3, 12), f"vidpolicy needs Python >= 3.12, found {sys.version.split()[0]}"'
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# the LeRobot plugins (plugins/) make `--policy.type=vpdd` and `--env.type=vidpolicy` in lerobot-train / lerobot-eval
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]" -e plugins/lerobot_policy_vpdd -e plugins/lerobot_env_vidpolicy
echo "vidpolicy installed in .venv ($(.venv/bin/python --version))"
