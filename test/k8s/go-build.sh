# shellcheck shell=bash
# The build scheme of the tools the tests build from source with Go, sourced by
# test/k8s/build-bins.sh, test/k8s/build-traefik.sh and test/infra/build-helm.sh: nothing to do
# when the cache already holds a complete build; else one build at a time (a flock on
# <cache>/.lock), into a temp folder in the cache that only a finished build leaves.
#
# What makes a build complete (the stamp, the cache folder's name) stays with each script: this
# file only runs the steps around it. The sourcing script defines `say MESSAGE` and `die MESSAGE`
# (stderr, its own prefix; die exits), runs under `set -euo pipefail` and calls these functions
# as plain commands (not in `if`, `||` or `&&`, where bash would ignore a failure inside them).
#
#   go_build_reuse_or_lock CACHE FORCE RESULT HINT COMPLETE...
#       Unless FORCE is 1: when the command COMPLETE... succeeds, says "up to date: RESULT",
#       prints RESULT on stdout and exits the script with 0. Otherwise dies when Go is missing
#       ("Go is not installed (HINT)"), takes CACHE/.lock on fd 9 (waiting for another build that
#       holds it) and checks COMPLETE... again, since that build may have made this one.
#   go_build_tmp CACHE
#       A fresh folder CACHE/.build-XXXXXX in $tmp, removed when the script exits.
#   go_build_install OUT STAMP
#       Writes STAMP to $tmp/.stamp and puts $tmp in the place of OUT, then says "done" and
#       prints OUT on stdout.

go_build_exit_if_complete() {
  local force=$1 result=$2
  shift 2
  if [[ $force != 1 ]] && "$@"; then
    say "up to date: $result"
    echo "$result"
    exit 0
  fi
}

go_build_reuse_or_lock() {
  local cache=$1 force=$2 result=$3 hint=$4
  shift 4
  go_build_exit_if_complete "$force" "$result" "$@"
  command -v go >/dev/null || die "Go is not installed ($hint)"
  mkdir -p "$cache"
  exec 9>"$cache/.lock"
  if ! flock -n 9; then
    say "another build is running; waiting for it"
    flock 9
  fi
  go_build_exit_if_complete "$force" "$result" "$@"
}

go_build_tmp() {
  tmp=$(mktemp -d "$1/.build-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
}

go_build_install() {
  local out=$1 stamp=$2
  echo "$stamp" >"$tmp/.stamp"
  rm -rf "$out"
  mv "$tmp" "$out"
  trap - EXIT
  say "done: $out ($(du -sh "$out" | cut -f1))"
  echo "$out"
}
