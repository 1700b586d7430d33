# shellcheck shell=bash
# The project's Python venvs, one per purpose under <repo>/.cache/ (venv-models, venv-hostile,
# venv-fuzz, venv-bench-peers, venv-bench-mlserver, venv-test). Sourced, not run, by the scripts
# that need one:
#
#   source "$ROOT/scripts/python-venv.sh"
#   ensure_venv "$ROOT/.cache/venv-models" "$ROOT/models/requirements.txt"
#
# The sourcing script defines `say MESSAGE` (progress, to stderr) and `die MESSAGE` (to stderr,
# then exit with the script's own error status); both prefix the script's name. It runs under
# `set -euo pipefail`, and calls these functions as plain commands (not in `if`, `||` or `&&`,
# where bash would ignore a failure inside them).
#
#   python_pick [LAST]
#       Chooses the interpreter that creates the venvs: $PYTHON, else python3.11, else python3,
#       into $python_venv_py. Dies unless it runs, is Python >= 3.11 (and at most LAST, e.g. 3.12,
#       when given) and has the venv and ensurepip modules.
#   ensure_venv VENV REQUIREMENTS [PYTHON]
#       Creates VENV with PYTHON (default: $python_venv_py, picked by python_pick when unset)
#       unless it exists; a VENV whose interpreter no longer runs (e.g. its base Python was
#       removed) is rebuilt. Installs REQUIREMENTS into it only when that file or the venv's
#       interpreter changed since the last install, which VENV/.requirements-stamp records (the
#       file's sha256, then `python -VV`), then runs `pip check`. pip's output goes to stderr.
#       $python_venv_pip_timeout, when set, bounds the install (seconds).

python_venv_py=${python_venv_py:-}
python_venv_pip_timeout=${python_venv_pip_timeout:-}

python_pick() {
  local last=${1:-} py
  if [[ -n "${PYTHON:-}" ]]; then
    py="$PYTHON"
  elif command -v python3.11 >/dev/null 2>&1; then
    py=python3.11
  elif command -v python3 >/dev/null 2>&1; then
    py=python3
  else
    die "no python3.11 or python3 on PATH (install Python >= 3.11, e.g. Debian: apt-get install python3 python3-venv; or set PYTHON=/path/to/python3.11)"
  fi
  command -v "$py" >/dev/null 2>&1 || die "interpreter '$py' not found (PYTHON=${PYTHON:-} is not on PATH or not executable)"
  if [[ -n $last ]]; then
    [[ $last =~ ^3\.[0-9]+$ ]] || die "python_pick: LAST is a version like 3.12, not '$last'"
    "$py" -c "import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (${last/./, }) else 1)" \
      || die "$py is $("$py" -V 2>&1); Python 3.11 to $last is required (set PYTHON=/path/to/python3.11)"
  else
    "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
      || die "$py is $("$py" -V 2>&1); Python >= 3.11 is required (set PYTHON=/path/to/python3.11)"
  fi
  "$py" -c 'import venv, ensurepip' 2>/dev/null \
    || die "$py lacks the venv/ensurepip modules (Debian: apt-get install python3-venv)"
  python_venv_py=$py
}

ensure_venv() {
  local venv=$1 req=$2 py=${3:-}
  local stamp="$venv/.requirements-stamp" want
  [[ -f "$req" ]] || die "missing $req"
  if [[ -z $py ]]; then
    [[ -n $python_venv_py ]] || python_pick
    py=$python_venv_py
  fi
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
  want="$( { sha256sum "$req" | cut -d' ' -f1; "$venv/bin/python" -VV; } )"
  if [[ -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$want" ]]; then
    say "requirements up to date ($venv)"
    return 0
  fi
  say "installing $req into $venv"
  rm -f "$stamp"
  local bound=()
  [[ -z $python_venv_pip_timeout ]] || bound=(timeout "$python_venv_pip_timeout")
  "${bound[@]}" "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-input -r "$req" >&2
  "$venv/bin/python" -m pip check >&2
  printf '%s\n' "$want" >"$stamp.tmp"
  mv "$stamp.tmp" "$stamp"
}
