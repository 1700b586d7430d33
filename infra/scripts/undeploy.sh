#!/usr/bin/env bash
# make undeploy: removes what make deploy and make demo created. ModelVersions go first, while the
# operator still runs to clear their finalizers. The files under ~/analytics-models and
# ~/analytics-backups stay (the PersistentVolumes are Retain); `kind delete cluster --name
# analytics` removes the cluster itself.
set -euo pipefail
# shellcheck source=infra/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need kubectl "see https://kubernetes.io/docs/tasks/tools/"
dist="$root/infra/dist"

if kc get crd modelversions.serving.analytics.dev >/dev/null 2>&1; then
  say "deleting ModelVersions"
  kc -n "$NAMESPACE" delete modelversions --all --wait --timeout=120s --ignore-not-found ||
    say "ModelVersions not deleted in time (is the operator running?); continuing"
fi
if kc get crd servicemonitors.monitoring.coreos.com >/dev/null 2>&1; then
  kc delete -f "$dist/monitoring/" --ignore-not-found --wait=false
fi
say "deleting infra/dist/ objects"
kc delete -f "$dist/" --ignore-not-found --wait=true --timeout=180s
say "undeployed"
