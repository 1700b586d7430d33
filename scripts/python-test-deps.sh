#!/usr/bin/env bash
# The Python packages the tests use as real clients (tritonclient's HTTP and gRPC clients), in a
# venv under .cache/ (scripts/python-venv.sh), installed again when test/v2/requirements.txt or the
# venv's interpreter changes, or when a client no longer imports.
#
# Environment:
#   PYTHON   interpreter used to create the venv (default: python3.11, else python3;
#            must be Python >= 3.11)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.cache/venv-test

say() { echo "python-test-deps: $*" >&2; }
die() { echo "python-test-deps: error: $*" >&2; exit 1; }

# shellcheck source=scripts/python-venv.sh
source scripts/python-venv.sh
imports() { "$venv/bin/python" -c 'import tritonclient.http, tritonclient.grpc' 2>/dev/null; }
if [[ -x $venv/bin/python ]] && ! imports; then
  say "the clients do not import in $venv; recreating it"
  rm -rf "$venv"
fi
ensure_venv "$venv" test/v2/requirements.txt
imports || die "tritonclient.http or tritonclient.grpc does not import in $venv after installing test/v2/requirements.txt"
