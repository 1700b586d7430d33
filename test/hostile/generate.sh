#!/usr/bin/env bash
# Writes the hostile ONNX models and their manifest.json (see test/hostile/README.md).
#
# Creates or reuses a Python venv in <repo>/.cache/venv-hostile, installs
# test/hostile/requirements.txt into it only when that file (or the interpreter) changed, then
# runs test/hostile/generate_models.py into the output folder only when the generator, the
# requirements or the interpreter changed since the last run into that folder (or its
# manifest.json is missing). Prints the output folder on its last stdout line; everything else
# goes to stderr. Any failure stops the script with a non-zero exit code.
#
# Usage: test/hostile/generate.sh [OUT_DIR] [--force] [--no-selfcheck]
#   OUT_DIR         default <repo>/.cache/hostile-models
#   --force         regenerate even when nothing changed
#   --no-selfcheck  skip the onnx/onnxruntime self-checks (quicker; the manifest then has no
#                   "selfcheck" entries). The stamp records it, so a later run with self-checks
#                   regenerates.
# Environment:
#   PYTHON                  interpreter used to create the venv (default: python3.11, else python3;
#                           must be Python >= 3.11)
#   HOSTILE_TIMEOUT_SECONDS bound on the generator run (default 1200)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/test/hostile"
VENV="$ROOT/.cache/venv-hostile"
REQ="$HERE/requirements.txt"
GEN="$HERE/generate_models.py"
me="test/hostile/generate.sh"

say() { echo "$me: $*" >&2; }
die() { echo "$me: error: $*" >&2; exit 1; }

out="$ROOT/.cache/hostile-models"
force=0
selfcheck=1
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --no-selfcheck) selfcheck=0 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) die "unknown option $arg" ;;
    *) out="$arg" ;;
  esac
done
mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"

# shellcheck source=scripts/python-venv.sh
source "$ROOT/scripts/python-venv.sh"
python_venv_pip_timeout=900
ensure_venv "$VENV" "$REQ"

# The output stamp: generator, requirements, interpreter and whether self-checks ran.
gen_want="$( { sha256sum "$GEN" "$REQ" | cut -d' ' -f1; "$VENV/bin/python" -VV; echo "selfcheck=$selfcheck"; } )"
gen_stamp="$out/.generator-stamp"
if [[ "$force" == 0 && -f "$out/manifest.json" && -f "$gen_stamp" ]] && [[ "$(cat "$gen_stamp")" == "$gen_want" ]]; then
  echo "$me: models up to date ($out)" >&2
else
  echo "$me: generating into $out" >&2
  args=("$out")
  [[ "$selfcheck" == 1 ]] || args+=(--no-selfcheck)
  export PYTHONHASHSEED=0 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
  export PYTHONDONTWRITEBYTECODE=1
  # the generator's own stdout goes to stderr: the last stdout line of this script is the folder
  timeout "${HOSTILE_TIMEOUT_SECONDS:-1200}" "$VENV/bin/python" "$GEN" "${args[@]}" >&2
  [[ -f "$out/manifest.json" ]] || die "the generator wrote no $out/manifest.json"
  printf '%s\n' "$gen_want" > "$gen_stamp.tmp"
  mv "$gen_stamp.tmp" "$gen_stamp"
fi

echo "$out"
