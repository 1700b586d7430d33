#!/usr/bin/env bash
# The Python packages the tests use as real clients (tritonclient's HTTP and gRPC clients), in a
# venv under .cache/, installed again when test/v2/requirements.txt changes (the stamp is its hash)
# or a client no longer imports.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.cache/venv-test
stamp="$venv/.requirements-$(sha256sum test/v2/requirements.txt | cut -c1-16)"
[ -f "$stamp" ] && "$venv/bin/python" -c 'import tritonclient.http, tritonclient.grpc' 2>/dev/null && exit 0
echo "python-test-deps: installing test/v2/requirements.txt into $venv"
rm -rf "$venv"
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r test/v2/requirements.txt
touch "$stamp"
