#!/usr/bin/env bash
# Builds Traefik, the ingress controller of the tests (test/k8s/ingress.ts), from source with Go:
#   traefik   (test/k8s/traefik, github.com/traefik/traefik/v3/cmd/traefik)
# into .cache/traefik/<tag>/, where <tag> names the version pinned in test/k8s/traefik/go.mod.
# The same scheme as build-bins.sh (test/k8s/go-build.sh): does nothing when that folder already
# holds a complete build of the same module files, a flock serialises concurrent runs, the build
# goes to a temp folder renamed into place at the end, and the folder is the last line on stdout.
#
# Two parts of Traefik's module graph cannot be had from the Go module proxy here, so this build
# differs from Traefik's own in two places (test/k8s/traefik/go.mod and _overlay/ say why):
#   - lego's list of DNS-01 providers (providers/dns/zz_gen_dns_providers.go) is replaced by
#     _overlay/lego-dns-providers.go, which knows none (13 providers' SDKs are refused);
#   - go-http-auth is the upstream release instead of Traefik's fork (refused), with the two
#     functions Traefik uses from the fork added (_overlay/go-http-auth-traefik.go).
# Both are copies of the pinned modules with that one file swapped or added, under
# .cache/traefik/.src/, and the build takes them through `go build -modfile` (the committed go.mod
# plus a directory replace for each); Go's -overlay refuses files under GOMODCACHE.
#
# Environment:
#   TRAEFIK_CACHE      parent folder of the builds (default: <repo>/.cache/traefik)
#   TRAEFIK_BUILD_P    go build -p (default: the core count, at most 2)
#   TRAEFIK_FORCE=1    rebuild even when up to date
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
mod=$here/traefik
cache=${TRAEFIK_CACHE:-$root/.cache/traefik}

say() { printf '[traefik] %s\n' "$*" >&2; }
die() { printf '[traefik] ERROR: %s\n' "$*" >&2; exit 1; }

version=$(awk '{ sub(/^require[ \t]+/, ""); sub(/^[ \t]+/, "") } $1 == "github.com/traefik/traefik/v3" { print $2; exit }' "$mod/go.mod")
[[ -n $version ]] || die "could not read the pinned Traefik version from test/k8s/traefik/go.mod"
tag="traefik-$version"
out="$cache/$tag"

# What the build depends on: the module files, the replacement file and the flags below.
flags_rev=2
stamp_of() {
  { cat "$mod"/go.{mod,sum} "$mod"/ext/go.mod "$mod"/ext/ext.go "$mod"/_overlay/*.go; echo "flags-rev=$flags_rev"; } | sha256sum | cut -c1-16
}
want=$(stamp_of)

complete() {
  [[ -f $out/.stamp && $(cat "$out/.stamp") == "$want" && -x $out/traefik ]]
}

# shellcheck source=test/k8s/go-build.sh
source "$here/go-build.sh"
go_build_reuse_or_lock "$cache" "${TRAEFIK_FORCE:-}" "$out" \
  "need go >= 1.26; the modules come from the Go module proxy" complete

cores=$(nproc)
p=${TRAEFIK_BUILD_P:-$((cores < 2 ? cores : 2))}
say "building Traefik $version into $out ($(go version | cut -d' ' -f3), -p $p)"
say "a cold build takes several minutes on 2 cores; later runs reuse Go's build cache ($(go env GOCACHE))"
go_build_tmp "$cache"

export GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0

# patched <module> <file in the module> <file of _overlay/> replace|add: a copy of the pinned
# module with that file replaced (it must exist) or added (it must not), at a fixed path (not in $tmp) so that Go's build cache recognises its
# packages from a previous build. Prints the copy's folder.
patched() {
  local module=$1 file=$2 ours=$3 how=$4 version dir src
  version=$(cd "$mod" && go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' "$module") ||
    die "cannot resolve $module in test/k8s/traefik"
  dir=$(cd "$mod" && go mod download -json "$module@$version" | sed -n 's/^\s*"Dir": "\(.*\)",\?$/\1/p')
  [[ -d $dir ]] || die "go mod download $module@$version failed (is the Go module proxy reachable?)"
  if [[ $how == replace && ! -f $dir/$file ]] || [[ $how == add && -e $dir/$file ]]; then
    die "$module@$version: cannot $how $file; check _overlay/$ours against that version"
  fi
  src="$cache/.src/${module//\//_}@$version"
  rm -rf "$src"
  mkdir -p "$(dirname "$src")"
  cp -r "$dir" "$src"
  chmod -R u+w "$src"
  cp "$mod/_overlay/$ours" "$src/$file"
  # A directory replacement needs a go.mod; go-http-auth v0.4.0 predates modules (its imports are
  # then resolved from Traefik's requirements, as they are for it without one).
  [[ -f $src/go.mod ]] || printf 'module %s\n\ngo 1.12\n' "$module" >"$src/go.mod"
  echo "$src"
}
lego_src=$(patched github.com/go-acme/lego/v5 providers/dns/zz_gen_dns_providers.go lego-dns-providers.go replace)
auth_src=$(patched github.com/abbot/go-http-auth zz_traefik_fork.go go-http-auth-traefik.go add)

# The committed go.mod with the two modules replaced by those copies, as a -modfile (go.sum
# beside it, as Go expects); the committed go-http-auth replace gives way to the directory one.
{
  grep -v '^\s*github.com/abbot/go-http-auth => ' "$mod/go.mod"
  printf '\nreplace github.com/go-acme/lego/v5 => %s\n' "$lego_src"
  printf 'replace github.com/abbot/go-http-auth => %s\n' "$auth_src"
} >"$tmp/go.mod"
cp "$mod/go.sum" "$tmp/go.sum"

t0=$SECONDS
say "go build github.com/traefik/traefik/v3/cmd/traefik -> traefik (downloads the modules it needs first)"
ldflags="-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$version"
if ! (cd "$mod" && go build -modfile="$tmp/go.mod" -p "$p" -trimpath -ldflags="$ldflags" -o "$tmp/traefik" github.com/traefik/traefik/v3/cmd/traefik); then
  die "go build of Traefik failed (module test/k8s/traefik); see the compiler output above"
fi
say "built traefik in $((SECONDS - t0)) s ($(du -h "$tmp/traefik" | cut -f1))"
rm -f "$tmp/go.mod" "$tmp/go.sum"

# Captured, then printed (no pipe into head under pipefail).
built=$("$tmp/traefik" version) || die "the built traefik does not run"
grep -q "$version" <<<"$built" || die "the built traefik says it is not $version: $built"
printf '%s\n' "${built%%$'\n'*}" >&2
go_build_install "$out" "$want"
