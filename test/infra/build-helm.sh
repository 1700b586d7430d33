#!/usr/bin/env bash
# Builds the Helm CLI the chart tests install with (helm.sh/helm/v3/cmd/helm, from the Go module
# proxy: no binary download) into .cache/helm/<version>/helm, once. Does nothing when that binary
# is there and answers `helm version`. Prints the binary's path on stdout's last line; progress
# goes to stderr.
#
# Environment:
#   HELM_CACHE     parent folder of the builds (default: <repo>/.cache/helm)
#   HELM_BUILD_P   go build -p (default: number of cores)
#   HELM_FORCE=1   rebuild even when built
set -euo pipefail

version=v3.22.0
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${HELM_CACHE:-$root/.cache/helm}
out="$cache/$version"

say() { printf '[helm] %s\n' "$*" >&2; }
die() { printf '[helm] ERROR: %s\n' "$*" >&2; exit 1; }

built() {
  [[ -x $out/helm ]] || return 1
  local v
  v=$("$out/helm" version --template '{{.Version}}' 2>/dev/null) || return 1
  [[ $v == "$version" ]]
}

# shellcheck source=test/k8s/go-build.sh
source "$here/../k8s/go-build.sh"
# One build at a time: test files may start together.
go_build_reuse_or_lock "$cache" "${HELM_FORCE:-}" "$out/helm" \
  "the Helm CLI is built from its Go module" built
go_build_tmp "$cache"
p=${HELM_BUILD_P:-$(nproc)}
say "go install helm.sh/helm/v3/cmd/helm@$version (-p $p; a few minutes on 2 cores when the module cache is cold)"
t0=$SECONDS
# The version stamp Helm's own Makefile sets, so `helm version` names the release.
if ! GOBIN="$tmp" GOWORK=off CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
  go install -p "$p" -trimpath -ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version" \
  "helm.sh/helm/v3/cmd/helm@$version"; then
  die "go install of helm $version failed; see the output above (is the Go module proxy reachable?)"
fi
[[ -x $tmp/helm ]] || die "no helm binary after the build"
rm -rf "$out"
mkdir -p "$out"
mv "$tmp/helm" "$out/helm"
built || die "the built helm does not report version $version"
say "built $out/helm in $((SECONDS - t0)) s"
echo "$out/helm"
