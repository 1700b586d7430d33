#!/usr/bin/env bash
# make cluster: the kind cluster of kind-config.yaml (host folders for models and backups
# created first, so they belong to you and not to root), then ingress-nginx for kind.
set -euo pipefail
# shellcheck source=infra/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need docker "install Docker Engine in WSL2, or enable Docker Desktop's WSL integration"
need kind "see https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "see https://kubernetes.io/docs/tasks/tools/"

# The ingress-nginx project's deploy manifest for kind, pinned to a controller release.
INGRESS_NGINX_VERSION=${INGRESS_NGINX_VERSION:-controller-v1.12.1}
INGRESS_NGINX_MANIFEST=${INGRESS_NGINX_MANIFEST:-https://raw.githubusercontent.com/kubernetes/ingress-nginx/$INGRESS_NGINX_VERSION/deploy/static/provider/kind/deploy.yaml}

clusters=$(kind get clusters 2>/dev/null || true)
if grep -qx "$CLUSTER_NAME" <<<"$clusters"; then
  say "kind cluster $CLUSTER_NAME exists"
else
  mkdir -p "$HOME/analytics-models" "$HOME/analytics-backups"
  config="$root/.cache/kind-config.yaml"
  mkdir -p "$(dirname "$config")"
  # kind does not expand variables in its config.
  sed "s|\${HOME}|$HOME|g" "$root/kind-config.yaml" >"$config"
  say "creating kind cluster $CLUSTER_NAME (models: ~/analytics-models, backups: ~/analytics-backups)"
  kind create cluster --name "$CLUSTER_NAME" --config "$config" --wait 180s
fi

say "installing ingress-nginx ($INGRESS_NGINX_VERSION)"
kc apply -f "$INGRESS_NGINX_MANIFEST"
kc -n ingress-nginx rollout status deployment/ingress-nginx-controller --timeout="$ROLLOUT_TIMEOUT"
say "cluster ready: kubectl context $KUBE_CONTEXT; next: make images && make deploy"
