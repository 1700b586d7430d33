#!/usr/bin/env bash
# Builds the test control plane's binaries from source with Go (no Docker, no binary downloads):
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  (test/k8s/kube, k8s.io/kubernetes)
#   kubelet, kube-proxy (the real node, test/k8s/real-node.ts)         (test/k8s/kube, k8s.io/kubernetes)
#   etcd                                                               (test/k8s/etcd, go.etcd.io/etcd/server/v3)
#   kwok                                                               (test/k8s/kwok, sigs.k8s.io/kwok)
#   coredns (the real node's cluster DNS)                              (test/k8s/coredns, github.com/coredns/coredns)
# into .cache/k8s-bins/<tag>/, where <tag> names the pinned versions read from the go.mod files.
# Does nothing (in well under a second) when that folder already holds a complete build of the
# same go.mod/go.sum files. Prints the folder on stdout's last line.
#
# Environment:
#   K8S_BINS_CACHE   parent folder of the builds (default: <repo>/.cache/k8s-bins)
#   K8S_BUILD_P      go build -p (parallel compile jobs; default: number of cores)
#   K8S_BINS_FORCE=1 rebuild even when up to date
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${K8S_BINS_CACHE:-$root/.cache/k8s-bins}

say() { printf '[k8s-bins] %s\n' "$*" >&2; }
die() { printf '[k8s-bins] ERROR: %s\n' "$*" >&2; exit 1; }

# The version a go.mod requires of a module (block or single-line require).
pin() {
  awk -v m="$2" '{ sub(/^require[ \t]+/, ""); sub(/^[ \t]+/, "") } $1 == m { print $2; exit }' "$here/$1/go.mod"
}
k8s=$(pin kube k8s.io/kubernetes)
etcd=$(pin etcd go.etcd.io/etcd/server/v3)
kwok=$(pin kwok sigs.k8s.io/kwok)
coredns=$(pin coredns github.com/coredns/coredns)
[[ -n $k8s && -n $etcd && -n $kwok && -n $coredns ]] || die "could not read the pinned versions from test/k8s/{kube,etcd,kwok,coredns}/go.mod"
tag="k8s-$k8s-etcd-$etcd-kwok-$kwok-coredns-$coredns"
out="$cache/$tag"
bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy etcd kwok coredns)
# kwok's stage configs (the ones kwokctl uses by default), copied from the pinned kwok module.
stages=(node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
  pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml)

# What the build depends on: the module files (and CoreDNS's main.go) and this script's build
# flags (below).
flags_rev=3
stamp_of() {
  { cat "$here"/{kube,etcd,kwok,coredns}/go.{mod,sum} "$here/coredns/main.go"; echo "flags-rev=$flags_rev"; } | sha256sum | cut -c1-16
}
want=$(stamp_of)

complete() {
  [[ -f $out/.stamp && $(cat "$out/.stamp") == "$want" ]] || return 1
  local b
  for b in "${bins[@]}"; do [[ -x $out/$b ]] || return 1; done
  [[ -s $out/kwok-stages.yaml ]]
}

# shellcheck source=test/k8s/go-build.sh
source "$here/go-build.sh"
# One build at a time (make test and make cluster-local may race).
go_build_reuse_or_lock "$cache" "${K8S_BINS_FORCE:-}" "$out" \
  "need go >= 1.26; the modules come from the Go module proxy" complete

say "building $tag into $out ($(go version | cut -d' ' -f3), -p ${K8S_BUILD_P:-$(nproc)})"
say "a cold build takes about 10 minutes on 2 cores; later runs reuse Go's build cache ($(go env GOCACHE))"
go_build_tmp "$cache"

export GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0
p=${K8S_BUILD_P:-$(nproc)}
major=${k8s#v}; major=${major%%.*}
minor=${k8s#v*.}; minor=${minor%%.*}
kver=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kver+=" -X $pkg.gitVersion=$k8s -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

# build <module dir> <output name> <package> [extra ldflags]
build() {
  local dir=$1 name=$2 pkg=$3 extra=${4:-} t0=$SECONDS
  say "go build $pkg -> $name"
  if ! (cd "$here/$dir" && go build -p "$p" -trimpath -ldflags="-s -w$extra" -o "$tmp/$name" "$pkg"); then
    die "go build $pkg failed (module test/k8s/$dir); see the compiler output above"
  fi
  say "built $name in $((SECONDS - t0)) s ($(du -h "$tmp/$name" | cut -f1))"
}

say "downloading modules (skipped when already in $(go env GOMODCACHE))"
for dir in kube etcd kwok coredns; do
  (cd "$here/$dir" && go mod download) || die "go mod download failed in test/k8s/$dir (is the Go module proxy reachable?)"
done

build etcd etcd go.etcd.io/etcd/server/v3
build kwok kwok sigs.k8s.io/kwok/cmd/kwok
build kube kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$kver"
build kube kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$kver"
build kube kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$kver"
build kube kubectl k8s.io/kubernetes/cmd/kubectl "$kver"
build kube kubelet k8s.io/kubernetes/cmd/kubelet "$kver"
build kube kube-proxy k8s.io/kubernetes/cmd/kube-proxy "$kver"
build coredns coredns .

kwokdir=$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok) || die "cannot locate the kwok module"
for s in "${stages[@]}"; do
  [[ -f $kwokdir/kustomize/stage/$s ]] || die "kwok stage $s not found in $kwokdir"
  { echo "# from sigs.k8s.io/kwok@$kwok kustomize/stage/$s"; cat "$kwokdir/kustomize/stage/$s"; echo "---"; }
done >"$tmp/kwok-stages.yaml"

for b in "${bins[@]}"; do [[ -x $tmp/$b ]] || die "missing $b after the build"; done
"$tmp/kube-apiserver" --version >&2 || die "the built kube-apiserver does not run"
"$tmp/kubelet" --version >&2 || die "the built kubelet does not run"
coredns_version=$("$tmp/coredns" -version) || die "the built coredns does not run"
printf '%s\n' "${coredns_version%%$'\n'*}" >&2
# Captured, then printed: under pipefail, piping etcd's version into a reader that quits after
# the first line fails whenever etcd writes its next line after that (SIGPIPE, 49 of 200 runs).
etcd_version=$("$tmp/etcd" --version) || die "the built etcd does not run"
printf '%s\n' "${etcd_version%%$'\n'*}" >&2
go_build_install "$out" "$want"
