# Sourced by the infra scripts: settings (overridable from the environment or make) and helpers.
# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables are used by the scripts that source this file

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLUSTER_NAME=${CLUSTER_NAME:-analytics}
# Every kubectl call names its context, so nothing lands on another cluster by accident.
KUBE_CONTEXT=${KUBE_CONTEXT:-kind-$CLUSTER_NAME}
NAMESPACE=${NAMESPACE:-analytics}
IMAGE=${IMAGE:-analytics-api:latest}
ROLLOUT_TIMEOUT=${ROLLOUT_TIMEOUT:-300s}
# The manifests deploy/undeploy apply: infra/dist/, or what `make synth NAMESPACE=...` wrote.
DIST=${DIST:-$root/infra/dist}

if [[ -t 2 ]]; then
  say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
else
  say() { printf '==> %s\n' "$*" >&2; }
fi
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is not installed: $2 (make doctor checks everything)"; }
kc() { kubectl --context "$KUBE_CONTEXT" "$@"; }
