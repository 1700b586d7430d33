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
STAMP="$VENV/.requirements-stamp"

die() { echo "models/generate.sh: error: $*" >&2; exit 1; }

if [[ -n "${PYTHON:-}" ]]; then
  py="$PYTHON"
elif command -v python3.11 >/dev/null 2>&1; then
  py=python3.11
elif command -v python3 >/dev/null 2>&1; then
  py=python3
else
  die "no python3.11 or python3 on PATH (set PYTHON=/path/to/python3.11)"
fi
command -v "$py" >/dev/null 2>&1 || die "interpreter '$py' not found"
"$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || die "$py is $("$py" -V 2>&1); Python >= 3.11 is required"
"$py" -c 'import venv, ensurepip' 2>/dev/null \
  || die "$py lacks the venv/ensurepip modules (Debian: apt-get install python3-venv)"

# A venv whose interpreter no longer runs (e.g. its base Python was removed) is rebuilt.
if [[ -d "$VENV" ]] && ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
  echo "models/generate.sh: venv $VENV is broken, recreating it" >&2
  rm -rf "$VENV"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "models/generate.sh: creating venv $VENV with $("$py" -V 2>&1)" >&2
  mkdir -p "$(dirname "$VENV")"
  "$py" -m venv "$VENV"
  rm -f "$STAMP"
fi

# The stamp records what was installed: the requirements file and the venv's Python.
want="$( { sha256sum "$REQ" | cut -d' ' -f1; "$VENV/bin/python" -VV; } )"
if [[ ! -f "$STAMP" ]] || [[ "$(cat "$STAMP")" != "$want" ]]; then
  echo "models/generate.sh: installing $REQ" >&2
  rm -f "$STAMP"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-input -r "$REQ"
  "$VENV/bin/python" -m pip check >&2
  printf '%s\n' "$want" > "$STAMP.tmp"
  mv "$STAMP.tmp" "$STAMP"
else
  echo "models/generate.sh: requirements up to date ($VENV)" >&2
fi

# Single-threaded, fixed hash seed: keeps training and inference deterministic.
export PYTHONHASHSEED=0 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
export PYTHONDONTWRITEBYTECODE=1
exec "$VENV/bin/python" "$ROOT/models/generate.py" "$@"
