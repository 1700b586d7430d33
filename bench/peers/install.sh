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
"$py" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else 1)' \
  || die "$py is $("$py" -V 2>&1); Python 3.11 or 3.12 is required"
"$py" -c 'import venv, ensurepip' 2>/dev/null \
  || die "$py lacks the venv/ensurepip modules (Debian: apt-get install python3-venv)"

# install_venv VENV REQUIREMENTS
install_venv() {
  local venv="$1" req="$2"
  local stamp="$venv/.requirements-stamp"
  [[ -f "$req" ]] || die "missing $req"
  # A venv whose interpreter no longer runs (e.g. its base Python was removed) is rebuilt.
  if [[ -d "$venv" ]] && ! "$venv/bin/python" -c '' >/dev/null 2>&1; then
    say "venv $venv is broken, recreating it"
    rm -rf "$venv"
  fi
  if [[ ! -x "$venv/bin/python" ]]; then
    say "creating venv $venv with $("$py" -V 2>&1)"
    mkdir -p "$(dirname "$venv")"
    "$py" -m venv "$venv"
    rm -f "$stamp"
  fi
  # The stamp records what was installed: the requirements file and the venv's Python.
  local want
  want="$( { sha256sum "$req" | cut -d' ' -f1; "$venv/bin/python" -VV; } )"
  if [[ ! -f "$stamp" ]] || [[ "$(cat "$stamp")" != "$want" ]]; then
    say "installing $req into $venv"
    rm -f "$stamp"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      --no-input -r "$req"
    "$venv/bin/python" -m pip check >&2
    printf '%s\n' "$want" > "$stamp.tmp"
    mv "$stamp.tmp" "$stamp"
  else
    say "requirements up to date ($venv)"
  fi
}

if [[ "$what" == fastapi || "$what" == all ]]; then
  install_venv "$ROOT/.cache/venv-bench-peers" "$PEERS/requirements.txt"
fi
if [[ "$what" == mlserver || "$what" == all ]]; then
  install_venv "$ROOT/.cache/venv-bench-mlserver" "$PEERS/mlserver/requirements.txt"
fi
