#!/usr/bin/env bash
# Installs the benchmark's baseline peers (see bench/peers/peers.ts):
#   fastapi   bench/peers/requirements.txt          into <repo>/.cache/venv-bench-peers
#   mlserver  bench/peers/mlserver/requirements.txt into <repo>/.cache/venv-bench-mlserver
# (two venvs: mlserver 1.7.1 requires fastapi < 0.116, the FastAPI peer runs the current one).
#
# Usage: bench/peers/install.sh [fastapi|mlserver|all]   (default: all)
#
# Creates or reuses each venv and installs its requirements only when that file (or the
# interpreter) changed, recorded in a stamp file in the venv. Safe to run repeatedly; any
# failure stops the script with a non-zero exit code.
#
# Environment:
#   PYTHON   interpreter used to create the venvs (default: python3.11, else python3;
#            must be Python >= 3.11 and < 3.13, MLServer's range)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PEERS="$ROOT/bench/peers"

die() { echo "bench/peers/install.sh: error: $*" >&2; exit 1; }
say() { echo "bench/peers/install.sh: $*" >&2; }

what="${1:-all}"
case "$what" in
  fastapi | mlserver | all) ;;
  *) die "unknown peer '$what' (fastapi, mlserver or all)" ;;
esac

# shellcheck source=scripts/python-venv.sh
source "$ROOT/scripts/python-venv.sh"
python_pick 3.12 # MLServer's range

if [[ "$what" == fastapi || "$what" == all ]]; then
  ensure_venv "$ROOT/.cache/venv-bench-peers" "$PEERS/requirements.txt"
fi
if [[ "$what" == mlserver || "$what" == all ]]; then
  ensure_venv "$ROOT/.cache/venv-bench-mlserver" "$PEERS/mlserver/requirements.txt"
fi
