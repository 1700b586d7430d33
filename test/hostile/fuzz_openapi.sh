#!/usr/bin/env bash
# Fuzzes a running service through its own OpenAPI document (<base>/docs/json) with schemathesis.
# See test/hostile/README.md.
#
# Usage: test/hostile/fuzz_openapi.sh [BASE_URL]
#   BASE_URL  the service, loopback only (default $BASE_URL, else http://127.0.0.1:18080)
#
# Run it against a throwaway service (its own MODELS_DIR): the fuzzer uploads, promotes and
# deletes versions. Start one with, e.g.
#   PORT=18080 MODELS_DIR=$(mktemp -d) SAMPLE_MODELS_DIR=models LOG_LEVEL=warn \
#     RATE_LIMIT_UPLOAD_PER_MINUTE=100000 make run
# (without the raised upload limit, uploads past 30 a minute answer 429, which the document
# does not list: status_code_conformance then reports them).
#
# Environment (all optional):
#   API_TOKEN             sent as "Authorization: Bearer $API_TOKEN" on every request
#   MAX_EXAMPLES          test cases per operation and phase (default 30)
#   FUZZ_TIMEOUT_SECONDS  hard bound on the schemathesis run (default 900); past it: exit 124
#   REQUEST_TIMEOUT       seconds per request (default 20)
#   SEED                  hypothesis seed (default 1), for reproducible runs
#   WORKERS               concurrent schemathesis workers (default 1)
#   PHASES                default examples,coverage,fuzzing (add stateful if you like)
#   CHECKS                default not_a_server_error,status_code_conformance,
#                         content_type_conformance,response_headers_conformance,
#                         response_schema_conformance,negative_data_rejection
#   MAX_RESPONSE_TIME     seconds; a slower answer is a failure (default 10)
#   INCLUDE_PATH_REGEX    only operations whose path matches (schemathesis --include-path-regex)
#   EXCLUDE_PATH_REGEX    leave out operations whose path matches (--exclude-path-regex): e.g.
#                         /unload$, whose 503s afterwards (the model is unloaded) are by design
#   FUZZ_OCTET_STREAM     1 (default): add the raw upload (application/octet-stream) of
#                         POST /api/v1/models to the document before fuzzing, since the served
#                         document lists only the JSON upload; 0: fuzz the document as served
#   REPORT_DIR            where the log, the JSON/JUnit reports and summary.txt go
#                         (default <repo>/.cache/hostile-fuzz-report)
#   PYTHON                interpreter for the venv (default python3.11, else python3)
#
# Exit status: 0 when every check passed, 1 on failures (summary on stdout, details in
# REPORT_DIR), 124 when the time bound cut the run short, 2 on a usage or setup error (or when
# schemathesis itself could not run).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/test/hostile"
VENV="$ROOT/.cache/venv-fuzz"
REQ="$HERE/requirements-fuzz.txt"
me="test/hostile/fuzz_openapi.sh"

say() { echo "$me: $*" >&2; }
die() { echo "$me: error: $*" >&2; exit 2; }

case "${1:-}" in
  -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
esac
[[ $# -le 1 ]] || die "one argument at most (the base URL); see --help"
base="${1:-${BASE_URL:-http://127.0.0.1:18080}}"
base="${base%/}"
# Loopback only: this fuzzer sends thousands of requests and uploads models.
if ! [[ "$base" =~ ^https?://(127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}|localhost|\[::1\])(:[0-9]{1,5})?(/.*)?$ ]]; then
  die "base URL $base is not a loopback address (127.0.0.0/8, localhost, [::1])"
fi

MAX_EXAMPLES="${MAX_EXAMPLES:-30}"
FUZZ_TIMEOUT_SECONDS="${FUZZ_TIMEOUT_SECONDS:-900}"
REQUEST_TIMEOUT="${REQUEST_TIMEOUT:-20}"
SEED="${SEED:-1}"
WORKERS="${WORKERS:-1}"
PHASES="${PHASES:-examples,coverage,fuzzing}"
CHECKS="${CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection}"
MAX_RESPONSE_TIME="${MAX_RESPONSE_TIME:-10}"
REPORT_DIR="${REPORT_DIR:-$ROOT/.cache/hostile-fuzz-report}"
for n in MAX_EXAMPLES FUZZ_TIMEOUT_SECONDS SEED WORKERS; do
  [[ "${!n}" =~ ^[0-9]+$ ]] || die "$n must be a whole number, not '${!n}'"
done

# ---- the venv (installed only when requirements-fuzz.txt or the interpreter changed) --------
# shellcheck source=scripts/python-venv.sh
source "$ROOT/scripts/python-venv.sh"
python_venv_pip_timeout=900
ensure_venv "$VENV" "$REQ"

# ---- what the service has --------------------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/hostile-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT
auth=()
[[ -z "${API_TOKEN:-}" ]] || auth=(-H "Authorization: Bearer $API_TOKEN")

status="$(curl -sS -o "$work/openapi.json" -w '%{http_code}' --max-time 15 "${auth[@]}" "$base/docs/json" 2>"$work/curl.err" || true)"
if [[ "$status" != "200" ]]; then
  die "GET $base/docs/json answered ${status:-nothing} ($(cat "$work/curl.err")); is the service running?"
fi
status="$(curl -sS -o "$work/models.json" -w '%{http_code}' --max-time 15 "${auth[@]}" "$base/api/v1/models" 2>"$work/curl.err" || true)"
[[ "$status" == "200" ]] || die "GET $base/api/v1/models answered ${status:-nothing} ($(cat "$work/curl.err"))"

# schemathesis.toml: real model ids, versions and feature names for the path parameters; the
# bytes of a real model (models/iris-logreg.onnx) for half of the uploads' model_data.
"$VENV/bin/python" - "$work" "$ROOT/models/iris-logreg.onnx" "$MAX_EXAMPLES" "$REQUEST_TIMEOUT" <<'PY'
import base64, json, sys
from pathlib import Path

work, sample, max_examples, request_timeout = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
doc = json.loads((work / "models.json").read_text())
models = doc if isinstance(doc, list) else doc.get("models", [])
ids, versions, features = [], set(), {}
for m in models:
    name = m.get("name")
    if not isinstance(name, str):
        continue
    ids.append(name)
    for v in m.get("versions", []):
        if isinstance(v.get("version"), str):
            versions.add(v["version"])
            ids.append(f"{name}@{v['version']}")
            # real names for the predict hook; very wide models would only make the run slow
            feats = v.get("features")
            if m.get("production_version") in (None, v["version"]) and isinstance(feats, list) and len(feats) <= 1000:
                features[name] = feats
if not ids:
    sys.exit("the service has no models: start it with SAMPLE_MODELS_DIR=models")
versions = sorted(versions) or ["1"]

def toml_list(values):
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"

lines = [
    f"generation.max-examples = {max_examples}",
    f"request-timeout = {request_timeout}",
    "",
    "[dictionaries.model_ids]", f"values = {toml_list(ids)}", "",
    "[dictionaries.versions]", f"values = {toml_list(versions)}", "",
]
bindings = {"path.model_id": ("model_ids", 0.8), "path.name": ("model_ids", 0.8), "path.version": ("versions", 0.8)}
if sample.exists():
    lines += ["[dictionaries.model_data]", f"values = {toml_list([base64.b64encode(sample.read_bytes()).decode()])}", ""]
    bindings["body.model_data"] = ("model_data", 0.5)
lines += ["[parameters]"] + [f'"{k}" = {{ dictionary = "{d}", probability = {p} }}' for k, (d, p) in bindings.items()] + [""]
# Errors the service answers to invalid input; a 2xx to schema-invalid data is a finding.
lines += ["[checks.negative_data_rejection]",
          'expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "414", "415", "422", "429", "431"]', ""]
(work / "schemathesis.toml").write_text("\n".join(lines))
(work / "features.json").write_text(json.dumps(features))
print(f"fuzz_openapi.sh: {len(features)} models, {len(ids)} model ids, versions {versions}", file=sys.stderr)
PY

mkdir -p "$REPORT_DIR"
rm -f "$REPORT_DIR"/schemathesis.log "$REPORT_DIR"/report.json "$REPORT_DIR"/junit.xml "$REPORT_DIR"/summary.txt

# shellcheck disable=SC2054  # "json,junit" is one argument
args=(run "$base/docs/json" --url "$base"
  --checks "$CHECKS"
  --phases "$PHASES"
  --max-examples "$MAX_EXAMPLES"
  --seed "$SEED"
  --workers "$WORKERS"
  --max-response-time "$MAX_RESPONSE_TIME"
  --request-timeout "$REQUEST_TIMEOUT"
  --generation-database none
  --continue-on-failure
  --suppress-health-check all
  --no-color
  --report json,junit
  --report-json-path "$REPORT_DIR/report.json"
  --report-junit-path "$REPORT_DIR/junit.xml")
[[ -z "${API_TOKEN:-}" ]] || args+=(-H "Authorization: Bearer $API_TOKEN")
[[ -z "${INCLUDE_PATH_REGEX:-}" ]] || args+=(--include-path-regex "$INCLUDE_PATH_REGEX")
[[ -z "${EXCLUDE_PATH_REGEX:-}" ]] || args+=(--exclude-path-regex "$EXCLUDE_PATH_REGEX")

echo "$me: fuzzing $base (max $MAX_EXAMPLES examples per operation, seed $SEED, bound ${FUZZ_TIMEOUT_SECONDS}s; log in $REPORT_DIR/schemathesis.log)" >&2
rc=0
(
  cd "$work"
  export SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1
  export HOSTILE_FUZZ_OCTET_STREAM="${FUZZ_OCTET_STREAM:-1}" HOSTILE_FUZZ_SAMPLE_MODEL="$ROOT/models/iris-logreg.onnx"
  export HOSTILE_FUZZ_MODELS_FILE="$work/features.json"
  exec timeout -k 30 -s INT "$FUZZ_TIMEOUT_SECONDS" "$VENV/bin/schemathesis" --config-file "$work/schemathesis.toml" "${args[@]}"
) > "$REPORT_DIR/schemathesis.log" 2>&1 || rc=$?

# A readable summary: each distinct failure once, with the request and response that showed it.
"$VENV/bin/python" - "$REPORT_DIR" "$rc" <<'PY' || true
import json, re, sys
from pathlib import Path

report_dir, rc = Path(sys.argv[1]), int(sys.argv[2])
log = (report_dir / "schemathesis.log").read_text(errors="replace")
out = []
# schemathesis' own failure section is the most readable account: keep it whole.
m = re.search(r"^=+ FAILURES =+$(.*?)(?=^=+ (?:WARNINGS|SUMMARY|ERRORS) =+$)", log, re.S | re.M)
# (errors = schemathesis' own trouble, e.g. a generation bug: not findings about the service)
if m:
    out.append("FAILURES (from schemathesis):")
    out.append(m.group(1).strip("\n"))
errs = re.search(r"^=+ ERRORS =+$(.*?)(?=^=+ (?:WARNINGS|SUMMARY|FAILURES) =+$)", log, re.S | re.M)
if errs:
    out.append("ERRORS (from schemathesis):")
    out.append(errs.group(1).strip("\n"))
s = re.search(r"^=+ SUMMARY =+$(.*)", log, re.S | re.M)
if s:
    out.append("SUMMARY:")
    out.append(s.group(1).strip("\n"))
if not out:
    out.append("(schemathesis printed no FAILURES/SUMMARY section; the last lines of its log:)")
    out.extend(log.splitlines()[-40:])
if rc == 124:
    out.append(f"THE RUN WAS CUT SHORT by FUZZ_TIMEOUT_SECONDS; results above are partial.")
# keep it readable: cut very long lines and very long sections (schemathesis' own tracebacks)
lines = []
for block in out:
    blines = block.splitlines()
    if len(blines) > 400:
        blines = blines[:400] + [f"... ({len(blines) - 400} more lines in schemathesis.log)"]
    lines += [ln if len(ln) <= 1500 else ln[:1500] + " ...(cut)" for ln in blines]
text = "\n".join(lines) + "\n"
(report_dir / "summary.txt").write_text(text)
sys.stdout.write(text)
PY

case "$rc" in
  0) echo "$me: every check passed ($REPORT_DIR)" >&2 ;;
  124) echo "$me: timed out after ${FUZZ_TIMEOUT_SECONDS}s (partial results in $REPORT_DIR)" >&2 ;;
  1) echo "$me: failures found; details in $REPORT_DIR/schemathesis.log and report.json" >&2 ;;
  *) echo "$me: schemathesis did not run to the end (exit $rc); see $REPORT_DIR/schemathesis.log" >&2; rc=2 ;;
esac
exit "$rc"
