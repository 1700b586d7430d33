#!/usr/bin/env bash
# Regenerates the sample ONNX models in models/ (see models/README.md).
#
# Creates or reuses a Python venv in <repo>/.cache/venv-models, installs
# models/requirements.txt into it only when that file (or the interpreter)
# changed, then runs models/generate.py. Safe to run repeatedly; any failure
# stops the script with a non-zero exit code.
#
# Environment:
#   PYTHON   interpreter used to create the venv (default: python3.11, else python3;
#            must be Python >= 3.11)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.cache/venv-models"
REQ="$ROOT/models/requirements.txt"

say() { echo "models/generate.sh: $*" >&2; }
die() { echo "models/generate.sh: error: $*" >&2; exit 1; }

# shellcheck source=scripts/python-venv.sh
source "$ROOT/scripts/python-venv.sh"
ensure_venv "$VENV" "$REQ"

# Single-threaded, fixed hash seed: keeps training and inference deterministic.
export PYTHONHASHSEED=0 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
export PYTHONDONTWRITEBYTECODE=1
exec "$VENV/bin/python" "$ROOT/models/generate.py" "$@"
