#!/usr/bin/env bash
# make undeploy: removes what make deploy and make demo created. ModelVersions go first, while the
# operator still runs to clear their finalizers. The files under ~/analytics-models and
# ~/analytics-backups stay (the PersistentVolumes are Retain); `kind delete cluster --name
# analytics` removes the cluster itself.
set -euo pipefail
# shellcheck source=infra/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need kubectl "see https://kubernetes.io/docs/tasks/tools/"
dist=$DIST

if kc get crd modelversions.serving.analytics.dev >/dev/null 2>&1; then
  say "deleting ModelVersions"
  kc -n "$NAMESPACE" delete modelversions --all --wait --timeout=120s --ignore-not-found ||
    say "ModelVersions not deleted in time (is the operator running?); continuing"
fi
if kc get crd servicemonitors.monitoring.coreos.com >/dev/null 2>&1; then
  kc delete -f "$dist/monitoring/" --ignore-not-found --wait=false
fi
# The CRD is shared by the installs of every namespace: it goes (with the ModelVersions of all
# of them) only when no other namespace has a ModelVersion left.
others=0
if kc get crd modelversions.serving.analytics.dev >/dev/null 2>&1; then
  others=$(kc get modelversions --all-namespaces --no-headers -o custom-columns=NS:.metadata.namespace | grep -cvx -- "$NAMESPACE" || true)
fi
say "deleting the objects of ${dist#"$root"/}/"
files=()
for f in "$dist"/*.yaml; do
  [[ $others -gt 0 && $(basename "$f") == 00-namespace.yaml ]] || files+=(-f "$f")
done
kc delete "${files[@]}" --ignore-not-found --wait=true --timeout=180s
if [[ $others -gt 0 ]]; then
  say "keeping the ModelVersion CRD: $others ModelVersion(s) in other namespaces use it"
  kc delete namespace "$NAMESPACE" --ignore-not-found --wait=true --timeout=180s
fi
say "undeployed"
