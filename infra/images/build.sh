#!/usr/bin/env bash
# Builds the container images the manifests (infra/dist/) and a Kubernetes node need, without any
# container registry, and optionally loads them into a containerd:
#
#   infra/images/build.sh [--load <containerd socket>]
#
#   debian:bookworm-slim   mmdebstrap of Debian bookworm (debian/), from the host's apt sources
#   node:24-bookworm-slim  the official node image's equivalent (node/), with Node.js, npm and Yarn
#                          from the npm registry; the tag is the one the project's Dockerfile uses
#   <redis image>          Debian's redis-server (redis/), tagged as infra/dist names its Redis
#   pause:<version>        Kubernetes' pod sandbox, from pause.c of the pinned k8s.io/kubernetes
#   analytics-api:latest   the project's own Dockerfile, unchanged, as it is now in the work tree
#
# Each image is a docker-archive in .cache/images/<name>-<key>.tar, where <key> hashes what the
# image is made of: its folder here, the function below that builds it, its parent's key and the
# versions it takes (the Debian candidates the host's apt sees, Node.js, the host's CA bundle and
# npm registry setting, or the project files the Dockerfile copies). A second run with the same
# inputs builds nothing (about 2 s, plus the --load import). buildah keeps its storage
# and layer cache in .cache/images/storage. With --load, every archive the manifests and a node
# need is imported into that containerd's k8s.io namespace (kubelet's), where the short names
# resolve as kubelet resolves the manifests' image names.
#
# Stdout: one line per loadable image, "<name> <archive>"; progress goes to stderr.
# Environment: IMAGES_CACHE (default <repo>/.cache/images), IMAGES_FORCE=1 (rebuild everything).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${IMAGES_CACHE:-$root/.cache/images}
force=${IMAGES_FORCE:-}
yarn_version=1.22.22 # the Yarn 1 release the official node images install

say() { printf '[images] %s\n' "$*" >&2; }
die() { printf '[images] ERROR: %s\n' "$*" >&2; exit 1; }

load_socket=""
while (($#)); do
  case $1 in
    --load) [[ $# -ge 2 ]] || die "--load needs a containerd socket path"; load_socket=$2; shift 2 ;;
    --load=*) load_socket=${1#--load=}; shift ;;
    -h | --help) sed -n '2,24s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument '$1' (usage: infra/images/build.sh [--load <containerd socket>])" ;;
  esac
done
[[ $(id -u) == 0 ]] || die "needs root (mmdebstrap --mode=root, buildah's storage, containerd's socket)"

"$root/test/k8s/node/system-packages.sh"
# The project's Node.js and npm (npm pack reads the host's registry settings).
export PATH="$root/node_modules/.bin:$PATH"
export GOWORK=off GOFLAGS="-mod=readonly"

mkdir -p "$cache/src"
exec 9>"$cache/.lock"
if ! flock -n 9; then
  say "another image build is running; waiting for it (at most 30 minutes)"
  flock -w 1800 9 || die "timed out waiting for $cache/.lock"
fi

B=(buildah --root "$cache/storage" --runroot "$cache/run" --storage-driver overlay)
# Never ask for more than the current limits: without CAP_SYS_RESOURCE raising them fails.
nproc_hard=$(ulimit -Hu)
[[ $nproc_hard == unlimited || $nproc_hard -gt 32768 ]] && nproc_hard=32768
bud=("${B[@]}" bud --pull=never --layers --runtime runc --network host
  --ulimit "nofile=$(ulimit -Sn):$(ulimit -Hn)" --ulimit "nproc=$nproc_hard:$nproc_hard")

# Temporary build contexts, removed on any exit; the image being built, named if it fails.
tmpdirs=() building=""
cleanup() {
  local rc=$?
  ((${#tmpdirs[@]})) && rm -rf "${tmpdirs[@]}"
  [[ $rc != 0 && -n $building ]] && say "ERROR: building $building failed (exit $rc); see the output above"
  return "$rc"
}
trap cleanup EXIT
newctx() { mktemp -d "$cache/.ctx-$1-XXXXXX"; }

sha() { sha256sum | cut -c1-16; }
files_sha() { (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha; }
candidate() { # the version apt would install on the host (the archive state its lists know)
  local out
  out=$(apt-cache policy "$@" 2>/dev/null) || true
  awk '/^[^ ]/ { p = $1 } /Candidate:/ { print p, $2 }' <<<"$out"
}
label=io.analytics-api.images.key

# in_storage <ref> <key>: buildah's storage holds <ref> built from <key>.
in_storage() {
  local got
  got=$("${B[@]}" inspect --type image --format "{{index .OCIv1.Config.Labels \"$label\"}}" "$1" 2>/dev/null) || return 1
  [[ $got == "$2" ]]
}

# needs_build <name> <key>: no archive for <key> yet (or IMAGES_FORCE=1).
needs_build() { [[ $force == 1 || ! -s $cache/$1-$2.tar ]]; }

# ensure <name> <key> <build-function> <ref>: the archive for <key>, built when missing.
ensure() {
  local name=$1 key=$2 fn=$3 ref=$4 archive=$cache/$1-$2.tar t0=$SECONDS
  if ! needs_build "$name" "$key"; then
    say "$ref: up to date ($archive)"
    return 0
  fi
  if [[ $force == 1 ]] || ! in_storage "$ref" "$key"; then
    say "$ref: building (key $key)"
    building=$ref
    "$fn" "$ref" "$key"
    building=""
  fi
  local tmp=$cache/.$name-$key.tar.tmp old
  rm -f "$tmp"
  # "docker-archive:<file>:<short name>" records the short name (and buildah's localhost/ one);
  # containerd's importer stores it under the fully qualified name kubelet asks for.
  "${B[@]}" push --quiet "$ref" "docker-archive:$tmp:$ref" >/dev/null || die "exporting $ref to $tmp failed"
  mv "$tmp" "$archive"
  for old in "$cache/$name"-*.tar; do [[ $old == "$archive" ]] || rm -f "$old"; done
  say "$ref: done in $((SECONDS - t0)) s ($(du -h "$archive" | cut -f1))"
}

# parent <ref> <key> <name>: the parent image in buildah's storage (re-read from its archive
# when the storage was wiped but the archive is there).
parent() {
  in_storage "$1" "$2" && return 0
  local archive=$cache/$3-$2.tar
  [[ -s $archive ]] || die "parent image $1 missing"
  "${B[@]}" pull --quiet "docker-archive:$archive" >/dev/null || die "re-reading $archive failed"
  in_storage "$1" "$2" || die "$archive does not hold $1 with key $2"
}

# ---------------------------------------------------------------------------------------------
# What to build: the images infra/dist/ runs, and the base the Dockerfile names.

mapfile -t dist_images < <(grep -rhoE '^[[:space:]]*image:[[:space:]]*[^[:space:]]+' "$root/infra/dist" \
  | sed -E 's/^[[:space:]]*image:[[:space:]]*//; s/^["'\'']//; s/["'\'']$//' | LC_ALL=C sort -u)
project_ref="" redis_ref=""
for ref in "${dist_images[@]}"; do
  case ${ref%%:*} in
    analytics-api) [[ -z $project_ref ]] || die "infra/dist names two analytics-api images ($project_ref, $ref)"; project_ref=$ref ;;
    redis) [[ -z $redis_ref ]] || die "infra/dist names two redis images ($redis_ref, $ref)"; redis_ref=$ref ;;
    *) die "infra/dist runs image '$ref', which infra/images/build.sh has no local recipe for" ;;
  esac
done
project_ref=${project_ref:-analytics-api:latest}

# The base images the Dockerfile starts from (FROM lines that are not its own stages).
mapfile -t from_refs < <(awk 'toupper($1) == "FROM" { for (i = 2; i <= NF; i++) if ($i !~ /^--/) { print $i; break } }
  toupper($1) == "FROM" && toupper($(NF-1)) == "AS" { print "stage:" $NF }' "$root/Dockerfile")
stages=" " node_ref=""
for f in "${from_refs[@]}"; do [[ $f == stage:* ]] && stages+="${f#stage:} "; done
for f in "${from_refs[@]}"; do
  [[ $f == stage:* || $stages == *" $f "* ]] && continue
  [[ $f =~ ^node:([0-9]+)-bookworm-slim$ ]] || die "the Dockerfile starts FROM '$f'; infra/images/ builds node:<major>-bookworm-slim only"
  [[ -z $node_ref || $node_ref == "$f" ]] || die "the Dockerfile uses two base images ($node_ref, $f)"
  node_ref=$f
done
[[ -n $node_ref ]] || die "no FROM node:<major>-bookworm-slim line in $root/Dockerfile"
node_major=${node_ref#node:}; node_major=${node_major%%-*}

node_version=$(node -p 'require(process.argv[1]).packages["node_modules/node"].version' "$root/package-lock.json") \
  || die "cannot read the node package's version from package-lock.json"
[[ ${node_version%%.*} == "$node_major" ]] \
  || die "the Dockerfile wants Node.js $node_major, the project pins node $node_version (package-lock.json)"

# The host's apt sources for Debian itself (deb822 or one-line), which mmdebstrap copies into the
# image so apt-get works there too.
debian_sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [[ -f $f ]] && grep -qs 'debian-archive-keyring\|^deb .*bookworm\|^Suites:.*bookworm' "$f" && debian_sources+=("$f")
done
((${#debian_sources[@]})) || die "no Debian bookworm entry in the host's apt sources (/etc/apt/sources.list*)"

# The host's npm settings for builds: its registry, and the CA bundle it trusts.
npm_registry=$(cd / && npm config get registry 2>/dev/null) || die "npm config get registry failed"
npm_cafile=$(cd / && npm config get cafile 2>/dev/null) || npm_cafile=""
[[ $npm_cafile == null || $npm_cafile == undefined ]] && npm_cafile=""
host_ca=${npm_cafile:-/etc/ssl/certs/ca-certificates.crt}
[[ -s $host_ca ]] || die "no CA bundle at $host_ca"

# ---------------------------------------------------------------------------------------------
# Recipes. Each runs with <ref> <key> and leaves <ref> in buildah's storage, labelled with <key>.

build_debian() {
  local ctx
  ctx=$(newctx debian); tmpdirs+=("$ctx")
  cp "$here/debian/Containerfile" "$ctx/"
  # "$1" is the chroot, expanded by mmdebstrap's hook shell.
  # shellcheck disable=SC2016
  local clean_hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/apt/* "$1"/var/log/dpkg.log'
  # minbase = Essential + Priority:required + apt, as debootstrap's minbase (debian:*-slim);
  # merged /usr as bookworm has it; the slim variant's dpkg excludes.
  mmdebstrap --variant=minbase --mode=root --format=tar --quiet \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/groff/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --customize-hook="$clean_hook" \
    bookworm "$ctx/rootfs.tar" "${debian_sources[@]}" >&2
  "${bud[@]}" --label "$label=$2" -t "$1" "$ctx" >&2
}

# npm_tarball <spec> <file>: a package tarball from the npm registry, kept in .cache/images/src.
npm_tarball() {
  [[ -s $cache/src/$2 ]] && return 0
  (cd "$cache/src" && npm pack --silent "$1" >/dev/null) || die "npm pack $1 failed"
  [[ -s $cache/src/$2 ]] || die "npm pack $1 did not write $2"
}

build_node() {
  local ctx arch npm_version
  case $(uname -m) in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) die "no node-linux package for $(uname -m)" ;; esac
  ctx=$(newctx node); tmpdirs+=("$ctx")
  npm_tarball "node-linux-$arch@$node_version" "node-linux-$arch-$node_version.tgz"
  mkdir -p "$ctx/node" "$ctx/npm" "$ctx/yarn"
  tar -xzf "$cache/src/node-linux-$arch-$node_version.tgz" -C "$ctx/node" --strip-components=1 --no-same-owner
  # The npm release this Node.js ships with, from its own changelog (newest first).
  npm_version=$(awk -v v="$node_version" '$0 ~ "^## .*Version " v " " { f = 1 }
    f && /upgrade npm to [0-9]/ { match($0, /upgrade npm to [0-9]+\.[0-9]+\.[0-9]+/); print substr($0, RSTART + 15, RLENGTH - 15); exit }' \
    "$ctx/node/CHANGELOG.md")
  [[ -n $npm_version ]] || die "cannot find the npm version of Node.js $node_version in its CHANGELOG.md"
  # The official tarball's layout under /usr/local: bin/node, include/node, share/{doc,man}/...
  mkdir -p "$ctx/node/share/doc/node"
  mv "$ctx/node/CHANGELOG.md" "$ctx/node/README.md" "$ctx/node/LICENSE" "$ctx/node/share/doc/node/"
  rm -f "$ctx/node/package.json"
  npm_tarball "npm@$npm_version" "npm-$npm_version.tgz"
  tar -xzf "$cache/src/npm-$npm_version.tgz" -C "$ctx/npm" --strip-components=1 --no-same-owner
  npm_tarball "yarn@$yarn_version" "yarn-$yarn_version.tgz"
  tar -xzf "$cache/src/yarn-$yarn_version.tgz" -C "$ctx/yarn" --strip-components=1 --no-same-owner
  cp "$here/node/Containerfile" "$here/node/docker-entrypoint.sh" "$ctx/"
  cp "$host_ca" "$ctx/host-ca-certificates.crt"
  printf 'registry=%s\ncafile=/etc/ssl/certs/ca-certificates.crt\n' "$npm_registry" >"$ctx/host-npmrc"
  say "node $node_version, npm $npm_version, yarn $yarn_version"
  "${bud[@]}" --label "$label=$2" --build-arg "NODE_VERSION=$node_version" --build-arg "YARN_VERSION=$yarn_version" \
    -t "$1" "$ctx" >&2
}

build_redis() {
  "${bud[@]}" --label "$label=$2" -t "$1" "$here/redis" >&2
}

pause_source() {
  local json dir
  json=$(cd "$root/test/k8s/kube" && go mod download -json k8s.io/kubernetes) || die "cannot download k8s.io/kubernetes (test/k8s/kube)"
  dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")
  [[ -f $dir/build/pause/linux/pause.c ]] || die "no build/pause/linux/pause.c in $dir"
  echo "$dir/build/pause"
}

build_pause() {
  local ctx src
  src=$(pause_source)
  ctx=$(newctx pause); tmpdirs+=("$ctx")
  # Kubernetes' own flags (build/pause/Makefile), then strip as its release build does.
  gcc -Os -Wall -Werror -static "-DVERSION=v$pause_version-local" -o "$ctx/pause" "$src/linux/pause.c" >&2
  strip "$ctx/pause"
  cp "$here/pause/Containerfile" "$ctx/"
  "${bud[@]}" --label "$label=$2" -t "$1" "$ctx" >&2
}

build_project() {
  "${bud[@]}" --label "$label=$2" -f "$root/Dockerfile" -t "$1" "$root" >&2
}

# ---------------------------------------------------------------------------------------------
# Keys

fn_sha() { declare -f "$1" | sha; }
debian_key=$({ fn_sha build_debian; files_sha "$here/debian"; cat "${debian_sources[@]}"; mmdebstrap --version
  candidate base-files libc6 dpkg apt bash coreutils tzdata; } | sha)
node_key=$({ echo "$debian_key"; fn_sha build_node; files_sha "$here/node"; echo "$node_version $yarn_version $npm_registry"
  sha256sum <"$host_ca"; } | sha)
redis_key=$({ echo "$debian_key"; fn_sha build_redis; files_sha "$here/redis"; candidate redis-server redis-tools; } | sha)
pause_src=$(pause_source)
pause_version=$(awk '$1 == "TAG" && $2 == "?=" { print $3; exit }' "$pause_src/Makefile")
[[ -n $pause_version ]] || die "cannot read the pause version from $pause_src/Makefile"
pause_key=$({ fn_sha build_pause; files_sha "$here/pause"; sha256sum <"$pause_src/linux/pause.c"; gcc --version; } | sha)

# The project image: the Dockerfile, .dockerignore and every file (tracked or not ignored by
# git) under the paths its COPY lines name, so any change the build could see gives a new key.
mapfile -t copy_srcs < <(awk 'toupper($1) == "COPY" { from = 0; n = 0
    for (i = 2; i <= NF; i++) { if ($i ~ /^--from/) from = 1; else if ($i !~ /^--/) a[++n] = $i }
    if (!from) for (i = 1; i < n; i++) print a[i] }' "$root/Dockerfile")
copied=()
if ((${#copy_srcs[@]})); then
  listed=$(cd "$root" && git ls-files -co --exclude-standard -- "${copy_srcs[@]}") || die "git ls-files failed in $root"
  while IFS= read -r f; do [[ -f $root/$f ]] && copied+=("$f"); done <<<"$listed"
fi
project_files_sha=$(cd "$root" && { printf '%s\n' "${copied[@]}"; ((${#copied[@]} == 0)) || sha256sum -- "${copied[@]}"; } | sha)
project_key=$({ echo "$node_key"; fn_sha build_project; sha256sum <"$root/Dockerfile"
  [[ -f $root/.dockerignore ]] && sha256sum <"$root/.dockerignore"; echo "$project_files_sha"; } | sha)

# ---------------------------------------------------------------------------------------------

t_all=$SECONDS
ensure debian "$debian_key" build_debian debian:bookworm-slim
if needs_build node "$node_key" || { [[ -n $redis_ref ]] && needs_build redis "$redis_key"; }; then
  parent debian:bookworm-slim "$debian_key" debian
fi
ensure node "$node_key" build_node "$node_ref"
[[ -n $redis_ref ]] && ensure redis "$redis_key" build_redis "$redis_ref"
ensure pause "$pause_key" build_pause "pause:$pause_version"
needs_build analytics-api "$project_key" && parent "$node_ref" "$node_key" node
ensure analytics-api "$project_key" build_project "$project_ref"
say "images ready in $((SECONDS - t_all)) s"
flock -u 9

loadable=("pause:$pause_version $cache/pause-$pause_key.tar" "$project_ref $cache/analytics-api-$project_key.tar")
[[ -n $redis_ref ]] && loadable+=("$redis_ref $cache/redis-$redis_key.tar")

if [[ -n $load_socket ]]; then
  [[ -S $load_socket ]] || die "no containerd socket at $load_socket"
  t0=$SECONDS
  # In parallel: the imports wait on the disk more than on the CPU (about half the time of one
  # after the other, measured).
  import_pids=()
  for entry in "${loadable[@]}"; do
    ctr --address "$load_socket" --namespace k8s.io images import "${entry#* }" >/dev/null &
    import_pids+=($!)
  done
  for i in "${!import_pids[@]}"; do
    wait "${import_pids[$i]}" || die "ctr images import ${loadable[$i]#* } failed"
  done
  listed=$(ctr --address "$load_socket" --namespace k8s.io images ls -q) || die "ctr images ls failed"
  for entry in "${loadable[@]}"; do
    ref=${entry%% *}
    [[ $'\n'$listed$'\n' == *"/$ref"$'\n'* ]] || die "containerd at $load_socket does not list $ref after the import"
  done
  say "loaded ${#loadable[@]} images into $load_socket in $((SECONDS - t0)) s"
fi
printf '%s\n' "${loadable[@]}"
