#!/usr/bin/env bash
# Every GPU path of jetsynth in one call, under eight minutes, one JSON summary on stdout
# (see tools/gpu_check.py). Run from anywhere: bash tools/gpu_check.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec timeout 470 python tools/gpu_check.py "$@"
