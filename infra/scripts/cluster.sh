#!/usr/bin/env bash
# make cluster: the kind cluster of kind-config.yaml (host folders for models and backups
# created first, so they belong to you and not to root), then Traefik as its ingress controller
# (Traefik's Helm chart with infra/traefik-values.yaml). ingress-nginx, which this installed
# before, was retired upstream in March 2026; an earlier install of it is removed first.
set -euo pipefail
# shellcheck source=infra/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need docker "install Docker Engine in WSL2, or enable Docker Desktop's WSL integration"
need kind "see https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "see https://kubernetes.io/docs/tasks/tools/"
need helm "see https://helm.sh/docs/intro/install/"

# Traefik's Helm chart, pinned (41.6.1's appVersion is Traefik v3.7.13; the values pin that tag
# explicitly, the release the end-to-end tests build).
TRAEFIK_CHART_VERSION=${TRAEFIK_CHART_VERSION:-41.6.1}
TRAEFIK_CHART_REPO=${TRAEFIK_CHART_REPO:-https://traefik.github.io/charts}
TRAEFIK_VALUES=${TRAEFIK_VALUES:-$root/infra/traefik-values.yaml}
# The release and its namespace; the chart names the Deployment, and its controller watches the
# IngressClass, after the release.
TRAEFIK_NAMESPACE=traefik
TRAEFIK_RELEASE=traefik

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

# A cluster made by an earlier `make cluster` runs ingress-nginx, which holds the node's ports 80
# and 443 and whose admission webhook would refuse every Ingress once its pods are gone.
if kc get namespace ingress-nginx >/dev/null 2>&1; then
  say "removing ingress-nginx (retired upstream; Traefik takes over ports 80 and 443)"
  kc delete validatingwebhookconfiguration,clusterrolebinding,clusterrole,ingressclass \
    -l app.kubernetes.io/name=ingress-nginx --ignore-not-found
  kc delete namespace ingress-nginx --wait=true --timeout="$ROLLOUT_TIMEOUT"
fi

say "installing Traefik (Helm chart $TRAEFIK_CHART_VERSION, values ${TRAEFIK_VALUES#"$root"/}) into namespace $TRAEFIK_NAMESPACE"
helm --kube-context "$KUBE_CONTEXT" upgrade --install "$TRAEFIK_RELEASE" traefik \
  --repo "$TRAEFIK_CHART_REPO" --version "$TRAEFIK_CHART_VERSION" \
  --namespace "$TRAEFIK_NAMESPACE" --create-namespace \
  --values "$TRAEFIK_VALUES" --wait --timeout "$ROLLOUT_TIMEOUT"
kc -n "$TRAEFIK_NAMESPACE" rollout status "deployment/$TRAEFIK_RELEASE" --timeout="$ROLLOUT_TIMEOUT"
class=$(kc get ingressclass traefik -o jsonpath='{.spec.controller}')
say "Traefik serves IngressClass traefik ($class) on http://localhost/ (ports 80 and 443 of the node)"
say "cluster ready: kubectl context $KUBE_CONTEXT; next: make images && make deploy"
