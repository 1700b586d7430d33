#!/usr/bin/env bash
# Installs the Debian packages the tests run for real (redis-server, prometheus/promtool, chromium
# for the /docs page test, wrk for the bench and its smoke test),
# only when a command is missing, so a warm machine does nothing.
set -euo pipefail
declare -A pkg_for=([redis-server]=redis-server [prometheus]=prometheus [promtool]=prometheus [chromium]=chromium [wrk]=wrk)
missing=()
for cmd in "${!pkg_for[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg_for[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "system-packages: installing ${missing[*]}"
sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get update -qq
$sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the daemons it installs; the tests start their own on free ports.
for svc in redis-server prometheus; do
  $sudo_cmd systemctl disable --now "$svc" >/dev/null 2>&1 || $sudo_cmd service "$svc" stop >/dev/null 2>&1 || true
done
