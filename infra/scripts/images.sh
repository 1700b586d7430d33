#!/usr/bin/env bash
# make images: builds the one image (service, operator, CLI) and loads it into the kind node, where
# imagePullPolicy IfNotPresent finds it without a registry.
set -euo pipefail
# shellcheck source=infra/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need docker "install Docker Engine in WSL2, or enable Docker Desktop's WSL integration"
need kind "see https://kind.sigs.k8s.io/docs/user/quick-start/#installation"

say "docker build -t $IMAGE"
docker build -t "$IMAGE" "$root"
say "loading $IMAGE into kind cluster $CLUSTER_NAME"
kind load docker-image "$IMAGE" --name "$CLUSTER_NAME"
# A rebuilt :latest is picked up by new pods only: restart the running ones.
if kc -n "$NAMESPACE" get deployment analytics-api >/dev/null 2>&1; then
  kc -n "$NAMESPACE" rollout restart deployment/analytics-api deployment/analytics-operator
fi
