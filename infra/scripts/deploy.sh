#!/usr/bin/env bash
# make deploy: applies infra/dist/ with server-side apply, creates the API token Secret when it is
# missing (a random token, never in the committed YAML), creates the routing ConfigMap once (the
# operator owns it after that), adds the monitoring objects when the Prometheus operator's CRDs
# exist, then waits for every rollout. Safe to run again.
set -euo pipefail
# shellcheck source=infra/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need kubectl "see https://kubernetes.io/docs/tasks/tools/"
dist=$DIST
shown=${dist#"$root"/} # infra/dist when it is the default
manager=analytics-deploy
create_only=serving.analytics.dev/create-only

say "applying $shown/ to $KUBE_CONTEXT"
kc apply --server-side --field-manager="$manager" -f "$dist/" -l "$create_only!=true"

if ! kc -n "$NAMESPACE" get secret analytics-api-token >/dev/null 2>&1; then
  say "creating Secret analytics-api-token with a random token"
  # From stdin: the token never appears on a command line.
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' |
    kc -n "$NAMESPACE" create secret generic analytics-api-token --from-file=token=/dev/stdin
  echo "read it with: kubectl -n $NAMESPACE get secret analytics-api-token -o jsonpath='{.data.token}' | base64 -d" >&2
fi

# Created once; after that the operator rewrites the routing and a reapply would undo it.
if ! out=$(kc create --save-config=false -f "$dist/" -l "$create_only=true" 2>&1); then
  others=$(grep -v 'AlreadyExists\|already exists' <<<"$out" || true)
  if [[ -n $others ]]; then die "$out"; fi
fi

if kc get crd servicemonitors.monitoring.coreos.com prometheusrules.monitoring.coreos.com >/dev/null 2>&1; then
  say "applying $shown/monitoring/ (ServiceMonitors, PrometheusRule, Grafana dashboard)"
  kc apply --server-side --field-manager="$manager" -f "$dist/monitoring/"
else
  say "skipping $shown/monitoring/: no Prometheus operator CRDs in this cluster (see docs/wsl2.md)"
fi

if [[ ${SKIP_ROLLOUT_WAIT:-} != 1 ]]; then
  for d in redis analytics-operator analytics-api; do
    say "waiting for deployment/$d"
    kc -n "$NAMESPACE" rollout status "deployment/$d" --timeout="$ROLLOUT_TIMEOUT"
  done
fi
say "deployed; next: make demo"
